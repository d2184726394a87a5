"""The node types of a flow. Each is compiled once from its XML element and run per request.

A node takes the stream (typed fields and rows) and gives the next one. `plan` checks the
node against the fields it will see, at compile time, so mistakes name their line early.
"""

from __future__ import annotations

import functools
import operator
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import sqlalchemy
from lxml import etree
from sqlalchemy.exc import SQLAlchemyError

from jobs.connections import database_engine
from jobs.expressions import (
    CompiledCondition,
    CompiledExpression,
    CompiledSteps,
    ExpressionError,
    compile_condition,
    compile_expression,
    find_name,
)
from jobs.flows.errors import FlowError, RunTimeout
from jobs.flows.language.parser import DEFAULT_TABLE, field_of, flag, line_of, required_attribute
from jobs.flows.language.values import Field
from jobs.flows.quality.locale import DEFAULT_LOCALE, Locale, parse_locale
from jobs.flows.quality.standardizing import STANDARDIZERS, standardize
from jobs.models import ConnectionString


@dataclass
class Stream:
    fields: list[Field]
    rows: list[tuple]

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]


def find(fields: Sequence[Field], name: str) -> int:
    """Position of a field, matched without case as SQL names are; -1 when absent."""
    return find_name([item.name for item in fields], name)


@dataclass
class RunState:
    """One run's macros, limits and log."""

    macros: dict[str, Any]
    tables: dict[str, Stream]
    deadline: float | None = None
    log: Callable[[str], None] = lambda message: None
    cancelled: Callable[[], bool] = lambda: False
    records_processed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def remaining(self) -> float:
        if self.deadline is None:
            return 30.0
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise RunTimeout("the run went past its maximum time and was stopped")
        return left

    def check(self) -> None:
        self.remaining()
        if self.cancelled():
            raise RunTimeout("the run was stopped")


@dataclass
class CompileContext:
    """What compiling a node may need: the flow's inputs and a way to load other flows."""

    input_tables: dict[str, list[Field]]
    macro_names: list[str]
    load_flow: Callable[[str, int | None], Any]
    locale: Locale = field(default_factory=lambda: parse_locale(DEFAULT_LOCALE))


class Node:
    tags: ClassVar[tuple[str, ...]] = ()
    label: ClassVar[str] = ""

    def __init__(self, element: etree._Element, context: CompileContext) -> None:
        self.line = line_of(element)
        self.context = context

    def plan(self, fields: list[Field]) -> list[Field]:
        """The fields after this node, given the fields before it."""
        return fields

    def run(self, stream: Stream, state: RunState) -> Stream:
        raise NotImplementedError

    def fail(self, message: str) -> FlowError:
        return FlowError(f"{self.label} node: {message}", self.line)


class ExternalData(Node):
    """External Data Provider: the rows of one input data table enter the flow."""

    tags = ("externalData", "externalDataProvider")
    label = "External Data Provider"

    def __init__(self, element: etree._Element, context: CompileContext) -> None:
        super().__init__(element, context)
        self.table = element.get("table") or DEFAULT_TABLE
        if self.table not in context.input_tables:
            raise self.fail(f"the flow declares no input table {self.table!r}")

    def plan(self, fields: list[Field]) -> list[Field]:
        return list(self.context.input_tables[self.table])

    def run(self, stream: Stream, state: RunState) -> Stream:
        table = state.tables.get(self.table) or Stream(self.plan([]), [])
        state.records_processed += len(table.rows)
        return Stream(list(table.fields), list(table.rows))


class _UsesExpressions(Node):
    """Compiles expressions per distinct field list; macros are columns after the fields."""

    def __init__(self, element: etree._Element, context: CompileContext) -> None:
        super().__init__(element, context)
        self._cache: dict[tuple[str, ...], Any] = {}

    def _macros_used(self, expr: str, names: Sequence[str]) -> list[str]:
        taken = {name.lower() for name in names}
        return [
            macro
            for macro in self.context.macro_names
            if macro.lower() not in taken and macro.lower() in expr.lower()
        ]

    def _compile(self, kind: str, expr: str, names: Sequence[str]) -> tuple[Any, list[str]]:
        macros = self._macros_used(expr, names)
        key = (kind, expr, *names, "\x00", *macros)
        hit = self._cache.get(key)
        if hit is None:
            columns = [*names, *macros]
            try:
                compiled: CompiledExpression | CompiledCondition = (
                    compile_condition(expr, columns)
                    if kind == "condition"
                    else compile_expression(expr, columns)
                )
            except ExpressionError as exc:
                raise self.fail(str(exc)) from None
            hit = self._cache[key] = (compiled, macros)
        return hit

    @staticmethod
    def _rows(rows: list[tuple], macros: list[str], state: RunState) -> list[tuple]:
        if not macros:
            return rows
        values = tuple(state.macros.get(name) for name in macros)
        return [row + values for row in rows]


class Expression(_UsesExpressions):
    """Computes fields from SQL expressions over the row; a field of the same name is replaced."""

    tags = ("expression",)
    label = "Expression"

    def __init__(self, element: etree._Element, context: CompileContext) -> None:
        super().__init__(element, context)
        self.outputs: list[tuple[Field, str, int | None]] = []
        for child in element:
            if not isinstance(child.tag, str):
                continue
            if child.tag != "field":
                raise FlowError(f"unknown element <{child.tag}> in <expression>", line_of(child))
            text = (child.get("expression") or child.text or "").strip()
            if not text:
                raise FlowError("an expression field needs an expression", line_of(child))
            self.outputs.append((field_of(child), text, line_of(child)))
        if not self.outputs:
            raise self.fail("no <field> to compute")

    def plan(self, fields: list[Field]) -> list[Field]:
        fields = list(fields)
        for target, text, _ in self.outputs:
            self._compile("expression", text, [f.name for f in fields])
            fields = _put(fields, target)
        return fields

    def run(self, stream: Stream, state: RunState) -> Stream:
        steps, macros = self._steps(stream.names)
        steps.timeout = state.remaining()
        try:
            values = steps.evaluate(self._rows(stream.rows, macros, state))
        except ExpressionError as exc:
            state.check()  # an expression stopped by the run's deadline is a timeout
            raise self.fail(str(exc)) from None
        fields = list(stream.fields)
        for target, _, _ in self.outputs:
            fields = _put(fields, target)
        # Where each target's final value goes: a field it replaces, or one after the others.
        places = [find(fields, name) for name in steps.targets]
        kept = len(stream.fields)
        rows = []
        for row, computed in zip(stream.rows, values, strict=True):
            out = list(row) + [None] * (len(fields) - kept)
            for place, value in zip(places, computed, strict=True):
                out[place] = value
            rows.append(tuple(out))
        return Stream(fields, rows)

    def _steps(self, names: list[str]) -> tuple[CompiledSteps, list[str]]:
        """All the outputs as one chained evaluation, compiled once per field list."""
        key = ("steps", *names)
        hit = self._cache.get(key)
        if hit is None:
            macros: list[str] = []
            current = list(names)
            for target, text, _ in self.outputs:
                for macro in self._macros_used(text, current):
                    if macro not in macros:
                        macros.append(macro)
                if find_name(current, target.name) < 0:
                    current.append(target.name)
            try:
                steps = CompiledSteps(
                    [(target.name, text) for target, text, _ in self.outputs], [*names, *macros]
                )
            except ExpressionError as exc:
                raise self.fail(str(exc)) from None
            hit = self._cache[key] = (steps, macros)
        return hit


class Filter(_UsesExpressions):
    """Keeps the rows where a SQL condition is true."""

    tags = ("filter",)
    label = "Filter"

    def __init__(self, element: etree._Element, context: CompileContext) -> None:
        super().__init__(element, context)
        self.condition = (element.get("condition") or element.text or "").strip()
        if not self.condition:
            raise self.fail("needs a condition")

    def plan(self, fields: list[Field]) -> list[Field]:
        self._compile("condition", self.condition, [f.name for f in fields])
        return fields

    def run(self, stream: Stream, state: RunState) -> Stream:
        compiled, macros = self._compile("condition", self.condition, stream.names)
        compiled.timeout = state.remaining()
        try:
            keep = compiled.matches(self._rows(stream.rows, macros, state))
        except ExpressionError as exc:
            state.check()
            raise self.fail(str(exc)) from None
        return Stream(
            stream.fields, [row for row, kept in zip(stream.rows, keep, strict=True) if kept]
        )


@dataclass
class _Pattern:
    """A DataFlux-style shape: 9 a digit, A a letter, anything else itself."""

    match: str
    output: str

    def apply(self, text: str) -> str:
        if len(text) != len(self.match):
            return text
        captured: list[str] = []
        for char, shape in zip(text, self.match, strict=True):
            if shape == "9":
                if not char.isdigit():
                    return text
                captured.append(char)
            elif shape == "A":
                if not char.isalpha():
                    return text
                captured.append(char)
            elif char != shape:
                return text
        out: list[str] = []
        for shape in self.output:
            if shape in "9A" and captured:
                out.append(captured.pop(0))
            else:
                out.append(shape)
        return "".join(out)


_SPACES = re.compile(r"\s+")


@functools.lru_cache(maxsize=16384)
def _standardized(kind: str, text: str, locale: Locale) -> str:
    # The typed step costs 0.1-1 ms a new value (nameparser, USPS rules); real data repeats
    # values, and the answers are shared by every engine of the process.
    return standardize(kind, text, locale)


@dataclass
class _Rule:
    name: str
    case: str | None
    trim: bool
    collapse: bool
    replaces: list[tuple[str, str]]
    patterns: list[_Pattern]
    kind: str | None = None  # a data type of jobs.flows.quality.standardizing
    locale: Locale | None = None

    def apply(self, value: Any) -> Any:
        if value is None:
            return None
        text = str(value)
        for old, new in self.replaces:
            text = text.replace(old, new)
        if self.collapse:
            text = _SPACES.sub(" ", text)
        if self.trim:
            text = text.strip()
        if self.case == "upper":
            text = text.upper()
        elif self.case == "lower":
            text = text.lower()
        elif self.case == "proper":
            text = " ".join(word[:1].upper() + word[1:].lower() for word in text.split(" "))
        for pattern in self.patterns:
            changed = pattern.apply(text)
            if changed != text:
                text = changed
                break
        if self.kind is not None and self.locale is not None:
            text = _standardized(self.kind, text, self.locale)
        return text


class Standardize(Node):
    """Cleans string fields: literal replacements, collapsed spaces, trim, case, shape patterns."""

    tags = ("standardize",)
    label = "Standardize"
    CASES = ("upper", "lower", "proper")

    def __init__(self, element: etree._Element, context: CompileContext) -> None:
        super().__init__(element, context)
        self.rules: list[tuple[_Rule, int | None]] = []
        for child in element:
            if not isinstance(child.tag, str):
                continue
            if child.tag != "field":
                raise FlowError(f"unknown element <{child.tag}> in <standardize>", line_of(child))
            case = child.get("case")
            if case is not None and case not in self.CASES:
                raise FlowError(f"case must be one of {', '.join(self.CASES)}", line_of(child))
            kind = child.get("type")
            if kind is not None and kind not in STANDARDIZERS:
                raise FlowError(
                    f"type must be one of {', '.join(STANDARDIZERS)}, not {kind!r}", line_of(child)
                )
            replaces, patterns = [], []
            for item in child:
                if not isinstance(item.tag, str):
                    continue
                if item.tag == "replace":
                    replaces.append((required_attribute(item, "from"), item.get("to") or ""))
                elif item.tag == "pattern":
                    patterns.append(
                        _Pattern(required_attribute(item, "match"), item.get("output") or "")
                    )
                else:
                    raise FlowError(f"unknown element <{item.tag}> in <field>", line_of(item))
            rule = _Rule(
                required_attribute(child, "name"),
                case,
                flag(child, "trim", True),
                flag(child, "collapseSpaces", False),
                replaces,
                patterns,
                kind,
                context.locale,
            )
            if kind == "address" and context.locale.country != "US":
                # usaddress and USPS Publication 28 describe US addresses only.
                raise FlowError(
                    "address standardization reads US addresses only (usaddress, USPS "
                    f"Publication 28); the flow's locale is {context.locale.tag}",
                    line_of(child),
                )
            self.rules.append((rule, line_of(child)))
        if not self.rules:
            raise self.fail("no <field> to standardize")

    def plan(self, fields: list[Field]) -> list[Field]:
        for rule, line in self.rules:
            if find(fields, rule.name) < 0:
                raise FlowError(f"Standardize node: no field {rule.name!r} to standardize", line)
        return fields

    def run(self, stream: Stream, state: RunState) -> Stream:
        positions = []
        for rule, line in self.rules:
            position = find(stream.fields, rule.name)
            if position < 0:
                raise FlowError(f"Standardize node: no field {rule.name!r} to standardize", line)
            positions.append((position, rule))
        rows = []
        for row in stream.rows:
            values = list(row)
            for position, rule in positions:
                values[position] = rule.apply(values[position])
            rows.append(tuple(values))
        return Stream(stream.fields, rows)


class FieldLayout(Node):
    """Renames, reorders and drops fields: the listed ones, in order, then others if kept."""

    tags = ("fieldLayout",)
    label = "Field Layout"

    def __init__(self, element: etree._Element, context: CompileContext) -> None:
        super().__init__(element, context)
        self.keep_others = flag(element, "keepOthers", False)
        self.entries: list[tuple[str, str]] = []
        self.drops: set[str] = set()
        for child in element:
            if not isinstance(child.tag, str):
                continue
            name = required_attribute(child, "name")
            if child.tag == "field":
                self.entries.append((name, (child.get("as") or name).strip()))
            elif child.tag == "drop":
                self.drops.add(name.lower())
            else:
                raise FlowError(f"unknown element <{child.tag}> in <fieldLayout>", line_of(child))
        if not self.entries and not self.drops:
            raise self.fail("lists no <field> or <drop>")

    def _mapping(self, fields: list[Field]) -> tuple[list[int], list[Field]]:
        picks: list[int] = []
        out: list[Field] = []
        for name, new_name in self.entries:
            position = find(fields, name)
            if position < 0:
                raise self.fail(f"no field {name!r} to lay out")
            picks.append(position)
            old = fields[position]
            out.append(Field(new_name, old.type, old.max_chars))
        if self.keep_others:
            for position, old in enumerate(fields):
                if position not in picks and old.name.lower() not in self.drops:
                    picks.append(position)
                    out.append(old)
        seen: set[str] = set()
        for item in out:
            if item.name.lower() in seen:
                raise self.fail(f"two fields would be named {item.name!r}")
            seen.add(item.name.lower())
        return picks, out

    def plan(self, fields: list[Field]) -> list[Field]:
        return self._mapping(fields)[1]

    def run(self, stream: Stream, state: RunState) -> Stream:
        picks, fields = self._mapping(stream.fields)
        if len(picks) == 1:
            (only,) = picks
            return Stream(fields, [(row[only],) for row in stream.rows])
        pick = operator.itemgetter(*picks)  # gives a tuple when there are several
        return Stream(fields, [pick(row) for row in stream.rows])


_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


class SqlLookup(Node):
    """Looks each row up in a database on a stored connection; the first result row fills fields."""

    tags = ("sqlLookup",)
    label = "SQL Lookup"

    def __init__(self, element: etree._Element, context: CompileContext) -> None:
        super().__init__(element, context)
        self.connection_key = required_attribute(element, "connection")
        query = element.find("query")
        self.query = (query.text or "").strip() if query is not None else ""
        if not self.query:
            raise self.fail("needs a <query>")
        self.params: dict[str, str] = {}
        self.results: list[tuple[str, Field]] = []
        for child in element:
            if not isinstance(child.tag, str) or child.tag == "query":
                continue
            if child.tag == "param":
                self.params[required_attribute(child, "name")] = required_attribute(child, "field")
            elif child.tag == "result":
                target = field_of(child)
                self.results.append((child.get("column") or target.name, target))
            else:
                raise FlowError(f"unknown element <{child.tag}> in <sqlLookup>", line_of(child))
        if not self.results:
            raise self.fail("needs at least one <result>")
        for name in _PARAM.findall(self.query):
            self.params.setdefault(name, name)
        self.engine = self._engine()

    def _engine(self) -> Any:
        if not ConnectionString.objects.filter(key=self.connection_key).exists():
            raise self.fail(f"no stored connection {self.connection_key!r}")
        try:
            return database_engine(self.connection_key)
        except Exception as exc:  # an unusable connection string is the flow's error
            raise self.fail(f"connection {self.connection_key!r}: {exc}") from None

    def plan(self, fields: list[Field]) -> list[Field]:
        for name, source in self.params.items():
            if find(fields, source) < 0:
                raise self.fail(f"parameter :{name} needs a field {source!r}")
        for _, target in self.results:
            fields = _put(fields, target)
        return fields

    def run(self, stream: Stream, state: RunState) -> Stream:
        sources = {
            name: find(stream.fields, field_name) for name, field_name in self.params.items()
        }
        if any(position < 0 for position in sources.values()):
            self.plan(stream.fields)
        fields = list(stream.fields)
        for _, target in self.results:
            fields = _put(fields, target)
        statement = sqlalchemy.text(self.query)
        cache: dict[tuple, tuple] = {}
        rows: list[tuple] = []
        try:
            with self.engine.connect() as connection:
                for row in stream.rows:
                    state.check()
                    params = {name: row[position] for name, position in sources.items()}
                    key = tuple(params.values())
                    found = cache.get(key)
                    if found is None:
                        result = connection.execute(statement, params).mappings().first()
                        found = tuple(
                            None if result is None else result.get(column)
                            for column, _ in self.results
                        )
                        cache[key] = found
                    rows.append(_set_values(stream.fields, fields, row, self.results, found))
        except SQLAlchemyError as exc:
            message = str(getattr(exc, "orig", None) or exc).strip()
            raise self.fail(f"query failed on {self.connection_key!r}: {message}") from None
        return Stream(fields, rows)


class FlowReference(Node):
    """Runs another stored flow on the stream's rows.

    `mode="merge"` (the default) adds the other flow's output fields to each row, which needs
    it to give one output row per input row; `mode="replace"` makes its output the stream.
    """

    tags = ("flow", "subflow", "flowRef")
    label = "Flow reference"
    MODES = ("merge", "replace")

    def __init__(self, element: etree._Element, context: CompileContext) -> None:
        super().__init__(element, context)
        self.name = (element.get("ref") or element.get("name") or "").strip()
        if not self.name:
            raise self.fail("needs a 'ref' attribute naming a stored flow")
        self.mode = element.get("mode") or "merge"
        if self.mode not in self.MODES:
            raise self.fail(f"mode must be one of {', '.join(self.MODES)}")
        self.flow = context.load_flow(self.name, self.line)
        if not self.flow.spec.input_tables:
            raise self.fail(f"flow {self.name!r} has no input table to pass the rows to")
        if self.flow.spec.output_table is None:
            raise self.fail(f"flow {self.name!r} has no output table to take the rows from")
        self.table = self.flow.spec.input_tables[0]
        self.output = list(self.flow.spec.output_table.fields)

    def plan(self, fields: list[Field]) -> list[Field]:
        for target in self.table.fields:
            if target.required and find(fields, target.name) < 0:
                raise self.fail(f"flow {self.name!r} needs the field {target.name!r}")
        if self.mode == "replace":
            return list(self.output)
        for target in self.output:
            fields = _put(fields, target)
        return fields

    def run(self, stream: Stream, state: RunState) -> Stream:
        picks = [find(stream.fields, target.name) for target in self.table.fields]
        rows = [tuple(None if p < 0 else row[p] for p in picks) for row in stream.rows]
        inner = RunState(
            macros=dict(state.macros),
            tables={self.table.name: Stream(list(self.table.fields), rows)},
            deadline=state.deadline,
            log=state.log,
            cancelled=state.cancelled,
        )
        result = self.flow.run_stream(inner)
        picks = [find(result.fields, target.name) for target in self.output]
        produced = [tuple(None if p < 0 else row[p] for p in picks) for row in result.rows]
        if self.mode == "replace":
            return Stream(list(self.output), produced)
        if len(produced) != len(stream.rows):
            raise self.fail(
                f"flow {self.name!r} gave {len(produced)} rows for {len(stream.rows)}; "
                'use mode="replace" for flows that filter rows'
            )
        fields = list(stream.fields)
        for target in self.output:
            fields = _put(fields, target)
        pairs = [(name, target) for name, target in ((t.name, t) for t in self.output)]
        merged = [
            _set_values(stream.fields, fields, row, pairs, values)
            for row, values in zip(stream.rows, produced, strict=True)
        ]
        return Stream(fields, merged)


def _put(fields: list[Field], target: Field) -> list[Field]:
    position = find(fields, target.name)
    if position < 0:
        return [*fields, target]
    return [*fields[:position], target, *fields[position + 1 :]]


def _set_values(
    before: list[Field],
    after: list[Field],
    row: tuple,
    results: list[tuple[str, Field]],
    values: tuple,
) -> tuple:
    out = list(row) + [None] * (len(after) - len(before))
    for (_, target), value in zip(results, values, strict=True):
        out[find(after, target.name)] = value
    return tuple(out)


NODE_TYPES: dict[str, type[Node]] = {
    tag: cls
    for cls in (
        ExternalData,
        Expression,
        Filter,
        Standardize,
        FieldLayout,
        SqlLookup,
        FlowReference,
    )
    for tag in cls.tags
}
