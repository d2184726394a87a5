"""A flow compiled for running: its nodes checked and built once, then run per request.

`CompiledFlow.run` takes the execute request's `inputs` (the DataFlux metadata shape), checks
and converts them, runs the nodes and gives back `outputs` in the same shape.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from jobs.expressions import ExpressionError, compile_expression
from jobs.flows.errors import FlowError, InputError
from jobs.flows.language.nodes import NODE_TYPES as BASIC_NODE_TYPES
from jobs.flows.language.nodes import CompileContext, Node, RunState, Stream, find
from jobs.flows.language.parser import FlowSpec, line_of, parse_flow
from jobs.flows.language.quality import QUALITY_NODE_TYPES
from jobs.flows.language.values import TYPES, ConversionError, Field, convert, macro_text, render
from jobs.flows.quality.locale import UnsupportedLocale, parse_locale

NODE_TYPES = {**BASIC_NODE_TYPES, **QUALITY_NODE_TYPES}

# Output macros the engine fills in itself, unless the flow computes them.
BUILTIN_MACROS = ("RecordsProcessed", "RecordsOut")

# Loads another stored flow by name (for flow references); gets the referencing line.
FlowLoader = Callable[[str, int | None], "CompiledFlow"]


class CompiledFlow:
    compile_seconds: float = 0.0

    def __init__(self, name: str, spec: FlowSpec, nodes: list[Node]) -> None:
        self.name = name
        self.spec = spec
        self.nodes = nodes
        # Stored flows it refers to (directly or not) → their versions when compiled.
        self.references: dict[str, str] = {}
        self._output_macros = [(macro, macro.expression) for macro in spec.output_macros]

    def run(
        self,
        inputs: dict[str, Any] | None,
        *,
        deadline: float | None = None,
        log: Callable[[str], None] = lambda message: None,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> dict[str, Any] | None:
        """Run over the request's inputs; the response's outputs, or None when there are none."""
        macros, tables = self.prepare_inputs(inputs or {})
        state = RunState(macros, tables, deadline, log, cancelled)
        stream = self.run_stream(state)
        return self.outputs(stream, state)

    def run_stream(self, state: RunState) -> Stream:
        stream = Stream([], [])
        for node in self.nodes:
            state.check()
            stream = node.run(stream, state)
        return stream

    def prepare_inputs(self, inputs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Stream]]:
        if not isinstance(inputs, dict):
            raise InputError("'inputs' must be an object of name-value pairs and data tables")
        macros: dict[str, Any] = {}
        tables: dict[str, Stream] = {}
        declared_tables = {t.name.lower(): t for t in self.spec.input_tables}
        for name, value in inputs.items():
            if isinstance(value, dict):
                table = declared_tables.get(name.lower())
                if (
                    table is None
                    and len(self.spec.input_tables) == 1
                    and len([v for v in inputs.values() if isinstance(v, dict)]) == 1
                ):
                    table = self.spec.input_tables[0]
                declared = list(table.fields) if table else []
                tables[table.name if table else name] = _table(name, value, declared)
            elif isinstance(value, list):
                raise InputError(f"input {name!r}: a data table needs 'metadata' and 'data'")
            else:
                macros[name] = value
        for macro in self.spec.input_macros:
            value = _pop_casefold(macros, macro.name)
            if value is None:
                value = macro.default
            if value is None and macro.required:
                raise InputError(f"missing required input {macro.name!r}")
            try:
                macros[macro.name] = convert(value, Field(macro.name, macro.type))
            except ConversionError as exc:
                raise InputError(f"input {macro.name!r}: {exc}") from None
        for table in self.spec.input_tables:
            if table.name not in tables:
                missing = [f.name for f in table.fields if f.required]
                if missing:
                    raise InputError(
                        f"missing required input data table {table.name!r} "
                        f"(field {missing[0]!r} is required)"
                    )
        return macros, tables

    def outputs(self, stream: Stream, state: RunState) -> dict[str, Any] | None:
        out: dict[str, Any] = {}
        builtin = {"RecordsProcessed": state.records_processed, "RecordsOut": len(stream.rows)}
        for macro, expression in self._output_macros:
            if expression is not None:
                names, values = _macro_row(state, builtin)
                try:
                    compiled = compile_expression(expression, names)
                    value = compiled.evaluate([values])[0]
                except ExpressionError as exc:
                    raise FlowError(f"output macro {macro.name!r}: {exc}", macro.line) from None
            elif macro.name in builtin:
                value = builtin[macro.name]
            else:
                value = state.macros.get(macro.name, macro.default)
            out[macro.name] = macro_text(value)
        table = self.spec.output_table
        if table is not None:
            picks = [find(stream.fields, f.name) for f in table.fields]
            data = [
                [
                    None if p < 0 else render(row[p], f)
                    for p, f in zip(picks, table.fields, strict=True)
                ]
                for row in stream.rows
            ]
            out[table.name] = {"metadata": [f.metadata() for f in table.fields], "data": data}
        return out or None


def _macro_row(state: RunState, builtin: dict[str, int]) -> tuple[list[str], list[Any]]:
    names: list[str] = []
    values: list[Any] = []
    for name, value in {**state.macros, **builtin}.items():
        if name.lower() not in (n.lower() for n in names):
            names.append(name)
            values.append(value)
    return names, values


def _pop_casefold(values: dict[str, Any], name: str) -> Any:
    for key in list(values):
        if key.lower() == name.lower():
            return values.pop(key)
    return None


def _table(name: str, value: dict[str, Any], declared: list[Field]) -> Stream:
    """A request data table checked against its own metadata, then mapped onto the flow's fields."""
    metadata, data = value.get("metadata"), value.get("data", [])
    if not isinstance(metadata, list) or not metadata:
        raise InputError(f"data table {name!r}: 'metadata' must list at least one column")
    if not isinstance(data, list):
        raise InputError(f"data table {name!r}: 'data' must be an array of rows")
    columns: list[Field] = []
    for number, entry in enumerate(metadata, 1):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise InputError(f"data table {name!r}: metadata column {number} needs a 'name'")
        kind = str(entry.get("type", "string")).lower()
        if kind not in TYPES:
            raise InputError(
                f"data table {name!r}: column {entry['name']!r} has unknown type {kind!r} "
                f"(expected one of {', '.join(TYPES)})"
            )
        max_chars = entry.get("maxChars")
        if max_chars is not None and (not isinstance(max_chars, int) or max_chars < 0):
            raise InputError(f"data table {name!r}: maxChars of {entry['name']!r} must be a number")
        columns.append(Field(entry["name"], kind, max_chars))
    # The flow's declared fields, in its order, then any extra columns the client sent.
    targets = list(declared) + [c for c in columns if find(declared, c.name) < 0]
    sources = [find(columns, target.name) for target in targets]
    for target, source in zip(targets, sources, strict=True):
        if source < 0 and target.required:
            raise InputError(f"data table {name!r}: missing required field {target.name!r}")
    width = len(columns)
    rows: list[tuple] = []
    for number, row in enumerate(data, 1):
        if not isinstance(row, list) or len(row) != width:
            size = len(row) if isinstance(row, list) else "not an array"
            raise InputError(
                f"data table {name!r}: row {number} has {size} values, expected {width}"
            )
        values: list[Any] = []
        for target, source in zip(targets, sources, strict=True):
            if source < 0:
                values.append(None)
                continue
            column = columns[source]
            try:
                value = convert(row[source], column)
                if column.type != target.type or target.max_chars is not None:
                    value = convert(value, target)
            except ConversionError as exc:
                raise InputError(
                    f"data table {name!r}: row {number}, field {column.name!r}: {exc}"
                ) from None
            if value is None and target.required:
                raise InputError(
                    f"data table {name!r}: row {number}, field {target.name!r} is required"
                )
            values.append(value)
        rows.append(tuple(values))
    return Stream(targets, rows)


def compile_flow(
    name: str, content: str | bytes, load_flow: FlowLoader | None = None
) -> CompiledFlow:
    """Parse and compile a flow; FlowError names the line and problem."""
    started = time.perf_counter()
    spec = parse_flow(content)

    def no_references(ref: str, line: int | None) -> CompiledFlow:
        raise FlowError(f"flow reference {ref!r} cannot be resolved here", line)

    try:
        locale = parse_locale(spec.locale)
    except UnsupportedLocale as exc:
        raise FlowError(str(exc), spec.line) from None
    context = CompileContext(
        input_tables={t.name: list(t.fields) for t in spec.input_tables},
        macro_names=[m.name for m in spec.input_macros],
        load_flow=load_flow or no_references,
        locale=locale,
    )
    nodes: list[Node] = []
    fields: list[Field] = []
    for element in spec.nodes:
        node_type = NODE_TYPES.get(element.tag)
        if node_type is None:
            known = ", ".join(sorted(NODE_TYPES))
            raise FlowError(f"unknown node <{element.tag}> (known: {known})", line_of(element))
        node = node_type(element, context)
        fields = node.plan(fields)
        nodes.append(node)
    table = spec.output_table
    if table is not None and nodes:
        for target in table.fields:
            if find(fields, target.name) < 0:
                raise FlowError(
                    f"output field {target.name!r} is not produced by the nodes", table.line
                )
    flow = CompiledFlow(name, spec, nodes)
    flow.compile_seconds = time.perf_counter() - started
    return flow
