"""Reading flow XML safely (no DTD, no entities, no network) into its declared interface.

The format is documented in docs/flows.md. Parsing gives the flow's description, inputs and
outputs (what `/metadata` shows) and its node elements, which
`jobs.flows.language.compiler` compiles.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from jobs.flows.errors import FlowError
from jobs.flows.language.values import TYPES, Field
from jobs.safexml import safe_parser

DEFAULT_TABLE = "dataTable"

# Refused before lxml sees the text: a DTD is where XXE and entity bombs live.
_DTD = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


@dataclass(frozen=True)
class Macro:
    """A named value: an input with an optional default, or an output computed at the end."""

    name: str
    type: str = "string"
    default: str | None = None
    required: bool = False
    expression: str | None = None
    line: int | None = None


@dataclass(frozen=True)
class Table:
    name: str
    fields: tuple[Field, ...]
    line: int | None = None


@dataclass
class FlowSpec:
    description: str = ""
    input_macros: list[Macro] = field(default_factory=list)
    input_tables: list[Table] = field(default_factory=list)
    output_macros: list[Macro] = field(default_factory=list)
    output_table: Table | None = None
    nodes: list[etree._Element] = field(default_factory=list)
    locale: str | None = None  # `<flow locale="fr-FR">`; checked when the flow is compiled
    line: int | None = None


def line_of(element: Any) -> int | None:
    """The element's line in the document (lxml's stubs leave `sourceline` untyped)."""
    line = getattr(element, "sourceline", None)
    return line if isinstance(line, int) else None


def parse_xml(content: str | bytes) -> etree._Element:
    """The root element of a flow document; FlowError (with the line) when it is not safe XML."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    if not data.strip():
        raise FlowError("the flow content is empty")
    dtd = _DTD.search(data)
    if dtd:
        at = data.count(b"\n", 0, dtd.start()) + 1
        raise FlowError("DOCTYPE and ENTITY declarations are not allowed in a flow", at)
    try:
        root = etree.fromstring(data, safe_parser())
    except etree.XMLSyntaxError as exc:
        raise FlowError(f"not well-formed XML: {exc.msg}", exc.lineno or None) from None
    if getattr(root.getroottree().docinfo, "doctype", ""):
        raise FlowError("DOCTYPE declarations are not allowed in a flow", 1)
    if root.tag != "flow":
        raise FlowError(f"the root element must be <flow>, not <{root.tag}>", line_of(root))
    return root


def description_of(content: str | bytes) -> str:
    """The flow's description for listings, or "" when the content cannot be read."""
    try:
        root = parse_xml(content)
    except FlowError:
        return ""
    return (root.findtext("description") or root.get("description") or "").strip()


def parse_flow(content: str | bytes) -> FlowSpec:
    root = parse_xml(content)
    spec = FlowSpec(description=(root.findtext("description") or root.get("description") or ""))
    spec.description = spec.description.strip()
    spec.locale = root.get("locale")
    spec.line = line_of(root)
    for child in _elements(root):
        if child.tag == "description":
            continue
        if child.tag == "inputs":
            spec.input_macros, spec.input_tables = _bindings(child, inputs=True)
        elif child.tag == "outputs":
            spec.output_macros, tables = _bindings(child, inputs=False)
            if len(tables) > 1:
                raise FlowError("a flow has at most one output table", tables[1].line)
            spec.output_table = tables[0] if tables else None
        elif child.tag == "nodes":
            spec.nodes = list(_elements(child))
        else:
            raise FlowError(f"unknown element <{child.tag}> in <flow>", line_of(child))
    _check_unique([m.name for m in spec.input_macros], "input macro", root)
    _check_unique([t.name for t in spec.input_tables], "input table", root)
    _check_unique([m.name for m in spec.output_macros], "output macro", root)
    return spec


def _elements(parent: etree._Element) -> list[etree._Element]:
    return [child for child in parent if isinstance(child.tag, str)]


def _bindings(parent: etree._Element, *, inputs: bool) -> tuple[list[Macro], list[Table]]:
    macros: list[Macro] = []
    tables: list[Table] = []
    for child in _elements(parent):
        if child.tag == "macro":
            macros.append(_macro(child, inputs=inputs))
        elif child.tag == "table":
            fields = tuple(_field(item) for item in _elements(child))
            if not fields:
                raise FlowError("a data table has at least one field", line_of(child))
            _check_unique([f.name for f in fields], "field", child)
            tables.append(Table(child.get("name") or DEFAULT_TABLE, fields, line_of(child)))
        else:
            raise FlowError(f"unknown element <{child.tag}> in <{parent.tag}>", line_of(child))
    return macros, tables


def _macro(element: etree._Element, *, inputs: bool) -> Macro:
    name = required_attribute(element, "name")
    kind = _type(element)
    default = element.get("default")
    expression = (
        None if inputs else (element.get("expression") or (element.text or "").strip() or None)
    )
    required = flag(element, "required", default=False)
    return Macro(name, kind, default, required, expression, line_of(element))


def _field(element: etree._Element) -> Field:
    if element.tag != "field":
        raise FlowError(f"unknown element <{element.tag}> in <table>", line_of(element))
    return field_of(element)


def field_of(element: etree._Element) -> Field:
    """A typed field from `name`, `type` and `maxChars` attributes."""
    name = required_attribute(element, "name")
    kind = _type(element)
    max_chars = element.get("maxChars")
    if max_chars is not None and not (max_chars.isdigit() and int(max_chars) > 0):
        raise FlowError(f"maxChars of {name!r} must be a positive integer", line_of(element))
    return Field(name, kind, int(max_chars) if max_chars else None, flag(element, "required"))


def _type(element: etree._Element) -> str:
    kind = (element.get("type") or "string").strip().lower()
    if kind not in TYPES:
        raise FlowError(
            f"unknown type {kind!r} (expected one of {', '.join(TYPES)})", line_of(element)
        )
    return kind


def required_attribute(element: etree._Element, name: str) -> str:
    value = element.get(name)
    if value is None or not value.strip():
        raise FlowError(f"<{element.tag}> needs a {name!r} attribute", line_of(element))
    return value.strip()


def flag(element: etree._Element, name: str, default: bool = False) -> bool:
    value = element.get(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise FlowError(f"{name!r} must be true or false, not {value!r}", line_of(element))


def _check_unique(names: list[str], what: str, where: etree._Element) -> None:
    seen: set[str] = set()
    for name in names:
        if name.lower() in seen:
            raise FlowError(f"duplicate {what} {name!r}", line_of(where))
        seen.add(name.lower())
