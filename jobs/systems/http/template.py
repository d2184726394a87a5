"""Placeholders in URIs, headers and bodies, escaped for where they land.

Reader side: `{{@param.NAME}}`, `{{@highwatermark}}`, `{{@executionid}}` and the paging values
`{{@offset}}`, `{{@limit}}`, `{{@page}}`, `{{@token}}`. Writer side: `{{column}}` (escaped for
the body type, unless the column is markup the job's own SQL wrote: `Column.markup`),
`{{{column}}}` (inserted as is), and in batch bodies a `{{#rows}}…{{/rows}}` section repeated
once per row (JSON bodies get a comma between repetitions); docs/http.md.
"""

from __future__ import annotations

import bisect
import decimal
import json
import math
import re
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from xml.sax.saxutils import escape as _xml_escape

Escape = Callable[[str], str]

_READER = re.compile(r"\{\{\s*@([A-Za-z_][\w.\-]*)\s*\}\}")
# `{{{column}}}` (as is) or `{{column}}` (escaped), matched in one pass over the template so
# that a value is never read as a template itself.
_PLACEHOLDER = re.compile(
    r"\{\{\{\s*(?P<raw>[^{}]+?)\s*\}\}\}|\{\{\s*(?![#/@])(?P<escaped>[^{}]+?)\s*\}\}"
)
_SECTION = re.compile(r"\{\{\s*#rows\s*\}\}(.*?)\{\{\s*/rows\s*\}\}", re.DOTALL)


class TemplateError(ValueError):
    """A placeholder that names nothing known; the message names it."""


def xml_escape(text: str) -> str:
    return _xml_escape(text, {'"': "&quot;", "'": "&apos;"})


def json_escape(text: str) -> str:
    """The text as it goes inside a JSON string literal (the template supplies the quotes)."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


def url_escape(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def raw(text: str) -> str:
    return text


def escape_for(content_type: str, *, is_rest: bool = False) -> Escape:
    """XML bodies get XML escaping, JSON bodies JSON escaping, anything else none."""
    kind = (content_type or "").lower()
    if "json" in kind or (is_rest and "xml" not in kind and not kind):
        return json_escape
    if "xml" in kind or "soap" in kind:
        return xml_escape
    return raw


def as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


def render_reader(text: str, values: Mapping[str, Any], escape: Escape, where: str) -> str:
    """Fill `{{@name}}` placeholders; `values` keys are lowercased names (`param.modelid`)."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1).lower()
        if name not in values:
            known = ", ".join("{{@" + k + "}}" for k in sorted(values)) or "none"
            raise TemplateError(
                f"{where}: placeholder {match.group(0)} has no value in this run (known: {known})."
            )
        return escape(as_text(values[name]))

    return _READER.sub(fill, text)


def reader_names(text: str) -> set[str]:
    return {m.group(1).lower() for m in _READER.finditer(text or "")}


def json_literal(value: Any) -> str:
    """A value as a JSON value: null, true/false, a number, or a string (quoted)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | decimal.Decimal):
        number = str(value)
        return number if math.isfinite(float(value)) else "null"
    return json.dumps(as_text(value), ensure_ascii=False)


def _json_string_test(text: str) -> Callable[[int], bool]:
    """Whether a position of a JSON template lies inside a string literal ("…")."""
    spans: list[int] = []  # start, end, start, end…
    inside = False
    at = 0
    while at < len(text):
        char = text[at]
        if inside and char == "\\":
            at += 2
            continue
        if char == '"':
            inside = not inside
            spans.append(at)
        at += 1
    return lambda position: bisect.bisect_right(spans, position) % 2 == 1


def lookup(row: Mapping[str, Any], name: str, where: str, token: str) -> Any:
    """A placeholder's column in a row, its name in any case."""
    if name in row:
        return row[name]
    lowered = name.lower()
    for key, value in row.items():
        if key.lower() == lowered:
            return value
    raise TemplateError(
        f"{where}: placeholder {token} names no column (columns: {', '.join(row)})."
    )


def render_row(
    text: str,
    row: Mapping[str, Any],
    escape: Escape,
    where: str,
    markup: frozenset[str] = frozenset(),
) -> str:
    """Fill `{{column}}` (escaped) and `{{{column}}}` (as is) from one row (names any case).

    A `{{column}}` named in `markup` (lowercased) is inserted as is in an XML body: it holds
    markup written by the job's own SQL, whose data jobs.systems.db.tsql escaped where it was
    spliced in; anything else, data from the source above all, is escaped here. (The vendor
    inserts every value as is; docs/decisions.md, "Template escaping".)

    In a JSON body, `{{column}}` inside a string literal (`"{{title}}"`) is the value's text,
    JSON-escaped; elsewhere (`{"id": {{id}}}`) it is the value as a JSON value, so a NULL is
    `null` and a text is quoted: the body is valid JSON whatever the row holds."""

    in_string = _json_string_test(text) if escape is json_escape else None

    def fill(match: re.Match[str]) -> str:
        if match.group("raw") is not None:
            return as_text(lookup(row, match.group("raw"), where, match.group(0)))
        name = match.group("escaped")
        value = lookup(row, name, where, match.group(0))
        if in_string is not None and not in_string(match.start()):
            return json_literal(value)
        if escape is xml_escape and name.lower() in markup:
            return as_text(value)
        return escape(as_text(value))

    return _PLACEHOLDER.sub(fill, text)


def render_batch(
    text: str,
    rows: Sequence[Mapping[str, Any]],
    escape: Escape,
    where: str,
    *,
    json_body: bool,
    markup: frozenset[str] = frozenset(),
) -> str:
    """A body for several rows: the `{{#rows}}` section once per row; or, for JSON without a
    section, a JSON array of the template rendered per row."""
    section = _SECTION.search(text)
    if section is None:
        if len(rows) == 1:
            return render_row(text, rows[0], escape, where, markup)
        if json_body:
            return (
                "[" + ",".join(render_row(text, row, escape, where, markup) for row in rows) + "]"
            )
        raise TemplateError(
            f"{where}: BatchCount sends several rows per request, so the body needs a "
            "{{#rows}}…{{/rows}} section to repeat per row (or BatchCount 1)."
        )
    body = section.group(1)
    joined = ("," if json_body else "").join(
        render_row(body, row, escape, where, markup) for row in rows
    )
    outside = text[: section.start()] + "\0ROWS\0" + text[section.end() :]
    outside = outside.replace("{{@count}}", str(len(rows)))
    return render_row(outside, {}, escape, where).replace("\0ROWS\0", joined)
