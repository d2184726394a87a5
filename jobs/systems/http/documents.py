"""Response documents → rows: DataZen's `TxDocumentRootPath` over XML and JSON.

The path is `||`-separated segments. The first selects the row elements (XML: an XPath where
names match local names, namespaces ignored; JSON: a JSONPath or dotted path to the array of
rows). Each further segment adds columns from another element relative to the row: `../..`
adds that element's leaf values as they are; `PREFIX=PATH` adds them as PREFIX + name
(`r_=../.` gives the parent's `id` as `r_id`, `t_=columnType` the child `columnType`'s
leaves as `t_…`). docs/http.md has worked examples.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from lxml import etree

from jobs.safexml import safe_parser

MAX_DEPTH = 64
_PREFIXED = re.compile(r"^\s*([A-Za-z_][\w\-]*)\s*=\s*(.+?)\s*$")
_DOCTYPE = re.compile(rb"<!DOCTYPE|<!ENTITY", re.IGNORECASE)
_XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"


class DocumentError(ValueError):
    """A response the settings cannot turn into rows: not XML/JSON, or a bad path."""


@dataclass(frozen=True)
class Segment:
    prefix: str
    path: str


@dataclass(frozen=True)
class RootPath:
    rows: str
    segments: tuple[Segment, ...]


def parse_root_path(text: str) -> RootPath:
    parts = [part.strip() for part in (text or "").split("||")]
    if not parts[0]:
        raise DocumentError("TxDocumentRootPath has no row path before its first '||'.")
    segments = []
    for part in parts[1:]:
        if not part:
            raise DocumentError("TxDocumentRootPath has an empty segment between '||'.")
        match = _PREFIXED.match(part)
        if match:
            segments.append(Segment(match.group(1), match.group(2)))
        else:
            segments.append(Segment("", part))
    return RootPath(parts[0], tuple(segments))


# -- XML ---------------------------------------------------------------------------------------
def parse_xml(content: bytes, where: str) -> etree._Element:
    if not content.strip():
        raise DocumentError(f"{where} is empty, not an XML document.")
    if _DOCTYPE.search(content[:4096]):
        raise DocumentError(f"{where} declares a DOCTYPE or ENTITY, which is refused.")
    try:
        root = etree.fromstring(content, safe_parser())
    except etree.XMLSyntaxError as exc:
        raise DocumentError(
            f"{where} is not well-formed XML (line {exc.lineno}): {exc.msg}; "
            f"it starts with {_start(content)!r}."
        ) from None
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        if element.get(_XSI_NIL) in ("true", "1"):
            element.set("__nil__", "1")
        element.tag = etree.QName(element).localname
        for name in list(element.attrib):
            if name.startswith("{"):
                value = element.attrib.pop(name)
                local = etree.QName(name).localname
                if local != "nil":
                    element.set(local, value)
    etree.cleanup_namespaces(root)
    return root


def _start(content: bytes) -> str:
    return content[:80].decode("utf-8", "replace")


def _leaves(element: etree._Element) -> Iterator[tuple[str, Any]]:
    """An element's attributes, then its leaf children (no element children) as name, value."""
    for name, value in element.attrib.items():
        if name != "__nil__":
            yield str(name), value
    repeated: dict[str, list[Any]] = {}
    order: list[str] = []
    for child in element:
        if not isinstance(child.tag, str) or len(child):
            continue
        text: str | None = None if child.get("__nil__") else (child.text or "")
        if child.tag not in repeated:
            repeated[child.tag] = []
            order.append(child.tag)
        repeated[child.tag].append(text)
    for name in order:
        values = repeated[name]
        # A leaf that repeats (<tag>a</tag><tag>b</tag>) is one column holding a JSON list.
        yield name, values[0] if len(values) == 1 else json.dumps(values)


def _xpath(element: etree._Element, path: str, what: str) -> list[Any]:
    try:
        found = element.xpath(path)
    except etree.XPathError as exc:
        raise DocumentError(
            f"TxDocumentRootPath {what} {path!r} is not a valid XPath: {exc}"
        ) from None
    return found if isinstance(found, list) else [found]


@dataclass(frozen=True)
class SoapFault:
    code: str  # as sent, e.g. "soap:Client" (1.1) or "env:Sender" (1.2)
    reason: str

    @property
    def blames_the_request(self) -> bool:
        """1.1 `Client` / 1.2 `Sender`: sending the same request again cannot help."""
        return self.code.rpartition(":")[2].strip().lower() in ("client", "sender")

    def __str__(self) -> str:
        return ": ".join(p for p in (self.code, self.reason) if p) or "no faultcode or reason"


def soap_fault(root: etree._Element) -> SoapFault | None:
    """The fault a SOAP envelope carries (1.1: faultcode/faultstring; 1.2: Code/Reason);
    None when the document is not a fault. Names are local (parse_xml)."""
    if root.tag != "Envelope":
        return None
    for body in root:
        if body.tag != "Body":
            continue
        for fault in body:
            if fault.tag != "Fault":
                continue
            code = fault.findtext("faultcode") or fault.findtext("Code/Value") or ""
            reason = fault.findtext("faultstring") or fault.findtext("Reason/Text") or ""
            return SoapFault(code.strip(), " ".join(reason.split()))
    return None


def xml_rows(content: bytes, root_path: str, raw_column: str, where: str) -> list[dict[str, Any]]:
    root = parse_xml(content, where)
    fault = soap_fault(root)
    if fault is not None:
        # A fault answered with 200 would otherwise be a page with no rows: a full sync
        # would then delete every row of the target.
        raise DocumentError(f"{where} is a SOAP fault: {fault}.")
    path = parse_root_path(root_path)
    rows: list[dict[str, Any]] = []
    for element in _xpath(root, path.rows, "row path"):
        if not isinstance(element, etree._Element):
            continue
        row: dict[str, Any] = dict(_leaves(element))
        for segment in path.segments:
            found = [e for e in _xpath(element, segment.path, "segment") if _is_element(e)]
            if found:
                for name, value in _leaves(found[0]):
                    row.setdefault(segment.prefix + name, value)
        if raw_column:
            row[raw_column] = etree.tostring(element, encoding="unicode", with_tail=False)
        rows.append(row)
    return rows


def _is_element(value: Any) -> bool:
    return isinstance(value, etree._Element)


# -- JSON --------------------------------------------------------------------------------------
_STEP = re.compile(r"\.\.(?P<deep>[\w\-$]+|\*)|\.(?P<name>[\w\-$]+|\*)|\[(?P<index>[^\]]+)\]")


@dataclass
class _Node:
    value: Any
    parent: _Node | None


def parse_json(content: bytes, where: str) -> Any:
    try:
        return json.loads(content)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        detail = (
            f"line {exc.lineno}, column {exc.colno}: {exc.msg}"
            if isinstance(exc, json.JSONDecodeError)
            else str(exc)
        )
        raise DocumentError(
            f"{where} is not valid JSON ({detail}); it starts with {_start(content)!r}."
        ) from None


def _steps(path: str) -> list[tuple[str, str]]:
    """`$.a.b[*]`, `a.b`, `$..items`, `$['a']` → (kind, name) steps."""
    text = path.strip()
    if text.startswith("$"):
        text = text[1:]
    elif text and not text.startswith((".", "[")):
        text = "." + text
    steps: list[tuple[str, str]] = []
    at = 0
    while at < len(text):
        match = _STEP.match(text, at)
        if match is None:
            raise DocumentError(f"TxDocumentRootPath {path!r} is not a JSON path I can read.")
        if match.group("deep"):
            steps.append(("deep", match.group("deep")))
        elif match.group("name"):
            steps.append(("name", match.group("name")))
        else:
            index = match.group("index").strip()
            if index == "*":
                steps.append(("name", "*"))
            elif index.lstrip("-").isdigit():
                steps.append(("index", index))
            else:
                steps.append(("name", index.strip("'\"")))
        at = match.end()
    return steps


def _children(node: _Node) -> list[_Node]:
    if isinstance(node.value, dict):
        return [_Node(v, node) for v in node.value.values()]
    if isinstance(node.value, list):
        return [_Node(v, node.parent) for v in node.value]
    return []


def _select(nodes: list[_Node], steps: list[tuple[str, str]]) -> list[_Node]:
    for kind, name in steps:
        out: list[_Node] = []
        for node in nodes:
            if kind == "name":
                if name == "*":
                    out.extend(_children(node))
                elif isinstance(node.value, dict) and name in node.value:
                    out.append(_Node(node.value[name], node))
                elif isinstance(node.value, list):  # a name over a list applies to its items
                    out.extend(
                        _Node(item[name], _Node(item, node.parent))
                        for item in node.value
                        if isinstance(item, dict) and name in item
                    )
            elif kind == "index":
                if isinstance(node.value, list):
                    i = int(name)
                    if -len(node.value) <= i < len(node.value):
                        out.append(_Node(node.value[i], node.parent))
            else:
                out.extend(_deep(node, name, 0))
        nodes = out
    return nodes


def _deep(node: _Node, name: str, depth: int) -> Iterator[_Node]:
    if depth > MAX_DEPTH:
        raise DocumentError(f"The JSON document is nested deeper than {MAX_DEPTH} levels.")
    if isinstance(node.value, dict):
        for key, value in node.value.items():
            child = _Node(value, node)
            if name in ("*", key):
                yield child
            yield from _deep(child, name, depth + 1)
    elif isinstance(node.value, list):
        for item in node.value:
            yield from _deep(_Node(item, node.parent), name, depth + 1)


_NESTED = frozenset({dict, list})


def flatten(value: Any, prefix: str = "", depth: int = 0) -> Iterator[tuple[str, Any]]:
    """Nested objects flattened with `_`; lists kept as JSON text."""
    if depth > MAX_DEPTH:
        raise DocumentError(f"The JSON document is nested deeper than {MAX_DEPTH} levels.")
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, dict):
            yield from flatten(item, f"{name}_", depth + 1)
        elif isinstance(item, list):
            yield name, json.dumps(item, ensure_ascii=False)
        else:
            yield name, item


def value_at(document: Any, path: str) -> Any:
    """The first value a JSON path selects in `document` (None when it selects nothing)."""
    found = _select([_Node(document, None)], _steps(path))
    return found[0].value if found else None


def _relative(node: _Node, path: str) -> _Node | None:
    current: _Node | None = node
    parts: list[str] = []
    for piece in path.strip().split("/"):
        # `..` and `.` are steps; `a.b` names a child and its child.
        parts.extend([piece] if piece in ("..", ".", "$") else [p for p in piece.split(".") if p])
    for part in parts or ["."]:
        if current is None:
            return None
        if part == "..":
            current = current.parent
        elif part in (".", "$"):
            continue
        elif isinstance(current.value, dict) and part in current.value:
            current = _Node(current.value[part], current)
        else:
            return None
    return current


def json_rows(content: bytes, root_path: str, raw_column: str, where: str) -> list[dict[str, Any]]:
    document = parse_json(content, where)
    path = parse_root_path(root_path or "$")
    selected = _select([_Node(document, None)], _steps(path.rows))
    rows: list[dict[str, Any]] = []
    if not path.segments and not raw_column:
        # No segment looks around a row: rows straight from the values (the common case).
        values: list[Any] = []
        for node in selected:
            if isinstance(node.value, list):
                values.extend(node.value)
            else:
                values.append(node.value)
        for value in values:
            if not isinstance(value, dict):
                rows.append({"value": value})
            elif _NESTED.isdisjoint(map(type, value.values())):
                rows.append(value)  # flat already: the parsed object is the row
            else:
                rows.append(dict(flatten(value)))
        return rows
    nodes: list[_Node] = []
    for node in selected:
        if isinstance(node.value, list):  # the path named the array itself
            nodes.extend(_Node(item, node.parent) for item in node.value)
        else:
            nodes.append(node)
    for node in nodes:
        value = node.value
        row: dict[str, Any]
        if not isinstance(value, dict):
            row = {"value": value}
        elif _NESTED.isdisjoint(map(type, value.values())):
            row = dict(value)  # flat already: copied at C speed (most API rows)
        else:
            row = dict(flatten(value))
        for segment in path.segments:
            found = _relative(node, segment.path)
            if found is not None and isinstance(found.value, dict):
                for name, item in flatten(found.value):
                    row.setdefault(segment.prefix + name, item)
        if raw_column:
            row[raw_column] = json.dumps(value, ensure_ascii=False)
        rows.append(row)
    return rows


def document_rows(
    content: bytes, *, is_json: bool, root_path: str, raw_column: str, where: str
) -> list[dict[str, Any]]:
    if is_json:
        return json_rows(content, root_path, raw_column, where)
    return xml_rows(content, root_path or "/*", raw_column, where)


def looks_like_json(content_type: str, content: bytes) -> bool:
    kind = content_type.lower()
    if "json" in kind:
        return True
    if "xml" in kind:
        return False
    return content.lstrip()[:1] in (b"{", b"[")
