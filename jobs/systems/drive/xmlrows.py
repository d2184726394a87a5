"""XML documents → row objects with DataZen's `TxDocumentRootPath` language.

The first `||`-separated segment is an XPath selecting the row elements (names are local
names: namespaces are ignored); each row's leaf children and attributes become columns. Each
further segment adds columns from an element relative to the row: `PATH` adds its leaf
children as they are, `PREFIX=PATH` adds them prefixed (`r_=../.` gives the parent's `id` as
`r_id`). Parsing is safe: no entities, no DTD, no network.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from lxml import etree


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def _strip_namespaces(root: Any) -> None:
    for element in root.iter():
        if isinstance(element.tag, str) and "}" in element.tag:
            element.tag = etree.QName(element).localname
        for name in list(element.attrib):
            if "}" in name:
                element.attrib[name.split("}", 1)[1]] = element.attrib.pop(name)
    etree.cleanup_namespaces(root)


def _leaves(element: Any, prefix: str, row: dict[str, Any]) -> None:
    for name, value in element.attrib.items():
        row.setdefault(prefix + name, value)
    for child in element:
        if not isinstance(child.tag, str):
            continue  # comments, processing instructions
        if len(child) == 0:
            row[prefix + child.tag] = child.text if child.text is not None else None
            for name, value in child.attrib.items():
                row.setdefault(f"{prefix}{child.tag}_{name}", value)


def xml_rows(data: bytes, root_path: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(source line, row) for each row element the path selects."""
    try:
        tree = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        line, column = exc.position
        message = re.sub(r", line \d+, column \d+$", "", str(exc.msg))
        raise ValueError(f"line {line}, column {column}: {message}") from None
    if tree.getroottree().docinfo.internalDTD is not None:
        raise ValueError("documents with a DTD are refused (entities are never expanded).")
    _strip_namespaces(tree)
    segments = [segment.strip() for segment in (root_path or "").split("||")]
    first = segments[0] if segments and segments[0] else "/*/*"
    extras: list[tuple[str, str]] = []
    for segment in segments[1:]:
        if not segment:
            continue
        prefix, _, path = segment.rpartition("=") if "=" in segment else ("", "", segment)
        extras.append((prefix.strip(), path.strip()))
    try:
        found = tree.getroottree().xpath(first)
    except etree.XPathError as exc:
        raise ValueError(f"TxDocumentRootPath '{first}' is not a valid XPath ({exc}).") from None
    if not isinstance(found, list):
        raise ValueError(f"TxDocumentRootPath '{first}' does not select elements.")
    for element in found:
        if not isinstance(element, etree._Element):
            raise ValueError(f"TxDocumentRootPath '{first}' does not select elements.")
        row: dict[str, Any] = {}
        _leaves(element, "", row)
        for prefix, path in extras:
            try:
                related = element.xpath(path)
            except etree.XPathError as exc:
                raise ValueError(
                    f"TxDocumentRootPath segment '{path}' is not a valid XPath ({exc})."
                ) from None
            for other in related if isinstance(related, list) else []:
                if isinstance(other, etree._Element):
                    _leaves(other, prefix, row)
        source_line: Any = element.sourceline
        yield (source_line if isinstance(source_line, int) else 0), row
