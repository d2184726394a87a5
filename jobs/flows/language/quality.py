"""The data-quality node types: gender, parse, match codes, identify and cluster (and the
`type` of a `<standardize>` field, in jobs.flows.language.nodes). The work is done by
jobs.flows.quality on its libraries' reference data; these classes read the XML, check the
fields and apply it row by row.

The answers for values already seen are kept (bounded, per process, shared by every engine and
flow): real data repeats given names, ZIP codes and domains, and a new value costs 0.1-1 ms in
nameparser, usaddress or scourgify against about 1 µs from the cache.
"""

from __future__ import annotations

import functools
from typing import Any

from lxml import etree

from jobs.flows.errors import FlowError
from jobs.flows.language.nodes import (
    CompileContext,
    Node,
    RunState,
    Stream,
    _put,
    _standardized,
    find,
)
from jobs.flows.language.parser import flag, line_of, required_attribute
from jobs.flows.language.values import Field
from jobs.flows.quality import gender, identify, matching, parsing, standardizing
from jobs.flows.quality.locale import Locale

CACHE_SIZE = 16384
_cache = functools.lru_cache(maxsize=CACHE_SIZE)


@_cache
def _gender(text: str, full: bool, country: str, strict: bool) -> str:
    given = gender.given_name(text, full=full)
    return gender.guess(given, country, strict=strict) if given else "U"


@_cache
def _country(value: Any, locale: Locale) -> str | None:
    return standardizing.country_code(value, locale)


@_cache
def _phone_region(value: Any, locale: Locale) -> str | None:
    return standardizing.phone_region(value, locale)


@_cache
def _parsed(kind: str, text: str | None, country: str | None) -> dict[str, Any]:
    # Shared between callers: read, never changed.
    parser = parsing.PARSERS[kind][1]
    return parser(text, country) if kind == "phone" else parser(text)


@_cache
def _match_code(kind: str, text: str, sensitivity: int, locale: Locale) -> str | None:
    return matching.match_code(kind, text, sensitivity, locale)


@_cache
def _identity(text: str, locale: Locale) -> tuple[str | None, int | None]:
    return identify.identify(text, locale)


def clear_caches() -> None:
    """Forget every answer kept (a benchmark's cold start)."""
    for cached in (_gender, _country, _phone_region, _parsed, _match_code, _identity):
        cached.cache_clear()
    _standardized.cache_clear()


def _require_us(node: Node, locale: Locale, what: str) -> None:
    # usaddress and USPS Publication 28 describe US addresses only.
    if locale.country != "US":
        raise node.fail(
            f"{what} reads US addresses only (usaddress, USPS Publication 28); "
            f"the flow's locale is {locale.tag}"
        )


def _int_attribute(element: etree._Element, name: str, default: int, low: int, high: int) -> int:
    text = element.get(name)
    if text is None:
        return default
    try:
        value = int(text.strip())
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise FlowError(
            f"{name!r} must be a whole number from {low} to {high}, not {text!r}", line_of(element)
        )
    return value


class _OneField(Node):
    """A node that reads one field (`field="…"`) and adds or replaces fields after it."""

    def __init__(self, element: etree._Element, context: CompileContext) -> None:
        super().__init__(element, context)
        self.field = required_attribute(element, "field")
        self.locale = context.locale
        self.outputs: list[Field] = []

    def position(self, fields: list[Field], name: str | None = None) -> int:
        wanted = name or self.field
        position = find(fields, wanted)
        if position < 0:
            raise self.fail(f"no field {wanted!r}")
        return position

    def plan(self, fields: list[Field]) -> list[Field]:
        self.position(fields)
        for target in self.outputs:
            fields = _put(fields, target)
        return fields

    def add(self, stream: Stream, computed: list[tuple]) -> Stream:
        """The stream with each row's computed values (in `outputs` order) added or replaced."""
        fields = list(stream.fields)
        for target in self.outputs:
            fields = _put(fields, target)
        places = [find(fields, target.name) for target in self.outputs]
        width = len(fields) - len(stream.fields)
        rows = []
        for row, values in zip(stream.rows, computed, strict=True):
            out = list(row) + [None] * width
            for place, value in zip(places, values, strict=True):
                out[place] = value
            rows.append(tuple(out))
        return Stream(fields, rows)


class Gender(_OneField):
    """Gender analysis: M, F or U from a given name or a full name (gender-guesser)."""

    tags = ("gender",)
    label = "Gender Analysis"
    SOURCES = ("given", "full")

    def __init__(self, element: etree._Element, context: CompileContext) -> None:
        super().__init__(element, context)
        self.source = element.get("from") or "given"
        if self.source not in self.SOURCES:
            raise self.fail(f"from must be one of {', '.join(self.SOURCES)}")
        self.strict = flag(element, "strict", False)
        self.country_field = element.get("countryField")
        self.outputs = [Field(element.get("output") or "Gender", "string", 1)]
        # The name dictionary takes about a second to read: at compile time, once per process,
        # so it counts in the engine's load and not in a run's time limit.
        gender.warm_up()

    def plan(self, fields: list[Field]) -> list[Field]:
        if self.country_field:
            self.position(fields, self.country_field)
        return super().plan(fields)

    def run(self, stream: Stream, state: RunState) -> Stream:
        at = self.position(stream.fields)
        country_at = self.position(stream.fields, self.country_field) if self.country_field else -1
        computed: list[tuple[str | None]] = []
        for row in stream.rows:
            value = row[at]
            if value is None:
                computed.append((None,))
                continue
            country = _country(row[country_at], self.locale) if country_at >= 0 else None
            text = str(value).strip()
            if len(text) > parsing.MAX_CHARS:
                computed.append(("U",))
                continue
            found = _gender(
                text, self.source == "full", country or self.locale.country, self.strict
            )
            computed.append((found,))
        return self.add(stream, computed)


class Parse(_OneField):
    """Parsing: a name, US address, e-mail or phone number into its parts."""

    tags = ("parse",)
    label = "Parse"

    def __init__(self, element: etree._Element, context: CompileContext) -> None:
        super().__init__(element, context)
        self.kind = required_attribute(element, "type")
        if self.kind not in parsing.PARSERS:
            raise self.fail(f"type must be one of {', '.join(parsing.PARSERS)}")
        if self.kind == "address":
            _require_us(self, self.locale, "address parsing")
        known = parsing.PARSERS[self.kind][0]
        self.country_field = element.get("countryField")
        if self.country_field and self.kind != "phone":
            raise self.fail('countryField applies to type="phone" only')
        prefix = element.get("prefix") or ""
        chosen: list[tuple[str, str]] = []
        for child in element:
            if not isinstance(child.tag, str):
                continue
            if child.tag != "part":
                raise FlowError(f"unknown element <{child.tag}> in <parse>", line_of(child))
            part = required_attribute(child, "name")
            if part not in known:
                raise FlowError(
                    f"a {self.kind} has no part {part!r} (parts: {', '.join(known)})",
                    line_of(child),
                )
            chosen.append((part, (child.get("as") or prefix + part).strip()))
        if not chosen:
            chosen = [(part, prefix + part) for part in known]
        self.parts = [part for part, _ in chosen]
        self.outputs = [
            Field(name, parsing.PART_TYPES.get(part, "string")) for part, name in chosen
        ]

    def plan(self, fields: list[Field]) -> list[Field]:
        if self.country_field:
            self.position(fields, self.country_field)
        return super().plan(fields)

    def run(self, stream: Stream, state: RunState) -> Stream:
        at = self.position(stream.fields)
        country_at = self.position(stream.fields, self.country_field) if self.country_field else -1
        computed = []
        for row in stream.rows:
            value = row[at]
            text = None if value is None else str(value)
            country = None
            if self.kind == "phone":
                found = _phone_region(row[country_at], self.locale) if country_at >= 0 else None
                country = found or self.locale.country
            parts = _parsed(self.kind, text, country)
            computed.append(tuple(parts[part] for part in self.parts))
        return self.add(stream, computed)


class MatchCode(_OneField):
    """Match codes: a phonetic key of the standardized value at a sensitivity (50-95)."""

    tags = ("matchCode",)
    label = "Match Code"

    def __init__(self, element: etree._Element, context: CompileContext) -> None:
        super().__init__(element, context)
        self.kind = element.get("type") or "text"
        if self.kind not in matching.MATCH_TYPES:
            raise self.fail(f"type must be one of {', '.join(matching.MATCH_TYPES)}")
        if self.kind == "address":
            _require_us(self, self.locale, "address matching")
        self.sensitivity = _int_attribute(
            element, "sensitivity", 85, matching.MIN_SENSITIVITY, matching.MAX_SENSITIVITY
        )
        self.outputs = [Field(element.get("output") or f"{self.field} Match Code", "string")]

    def run(self, stream: Stream, state: RunState) -> Stream:
        at = self.position(stream.fields)
        computed = [
            (
                None
                if row[at] is None
                else _match_code(self.kind, str(row[at]), self.sensitivity, self.locale),
            )
            for row in stream.rows
        ]
        return self.add(stream, computed)


class Identify(_OneField):
    """Identification analysis: person, organization, address, e-mail, phone or unknown."""

    tags = ("identify",)
    label = "Identification Analysis"

    def __init__(self, element: etree._Element, context: CompileContext) -> None:
        super().__init__(element, context)
        self.outputs = [
            Field(element.get("output") or "Identity", "string", 12),
            Field(element.get("confidence") or "Identity Confidence", "integer"),
        ]
        gender.warm_up()  # identification asks the name dictionary too

    def run(self, stream: Stream, state: RunState) -> Stream:
        at = self.position(stream.fields)
        computed = [
            (None, None) if row[at] is None else _identity(str(row[at]), self.locale)
            for row in stream.rows
        ]
        return self.add(stream, computed)


class Cluster(Node):
    """Clustering: rows whose fields agree under one of the rules share a cluster number."""

    tags = ("cluster",)
    label = "Clustering"

    def __init__(self, element: etree._Element, context: CompileContext) -> None:
        super().__init__(element, context)
        self.output = Field(element.get("output") or "Cluster", "integer")
        self.rules: list[list[tuple[str, int | None]]] = []
        for child in element:
            if not isinstance(child.tag, str):
                continue
            if child.tag != "rule":
                raise FlowError(f"unknown element <{child.tag}> in <cluster>", line_of(child))
            rule: list[tuple[str, int | None]] = []
            for item in child:
                if not isinstance(item.tag, str):
                    continue
                if item.tag != "field":
                    raise FlowError(f"unknown element <{item.tag}> in <rule>", line_of(item))
                similarity = (
                    _int_attribute(item, "similarity", 100, 1, 100)
                    if item.get("similarity") is not None
                    else None
                )
                rule.append((required_attribute(item, "name"), similarity))
            if not rule:
                raise FlowError("a <rule> needs at least one <field>", line_of(child))
            self.rules.append(rule)
        if not self.rules:
            raise self.fail("needs at least one <rule>")

    def _positions(self, fields: list[Field]) -> list[list[tuple[int, int | None]]]:
        resolved = []
        for rule in self.rules:
            positions = []
            for name, similarity in rule:
                position = find(fields, name)
                if position < 0:
                    raise self.fail(f"no field {name!r}")
                positions.append((position, similarity))
            resolved.append(positions)
        return resolved

    def plan(self, fields: list[Field]) -> list[Field]:
        self._positions(fields)
        return _put(fields, self.output)

    def run(self, stream: Stream, state: RunState) -> Stream:
        numbers = matching.clusters(stream.rows, self._positions(stream.fields))
        fields = _put(list(stream.fields), self.output)
        place = find(fields, self.output.name)
        width = len(fields) - len(stream.fields)
        rows = []
        for row, number in zip(stream.rows, numbers, strict=True):
            out = list(row) + [None] * width
            out[place] = number
            rows.append(tuple(out))
        return Stream(fields, rows)


QUALITY_NODE_TYPES: dict[str, type[Node]] = {
    tag: cls for cls in (Gender, Parse, MatchCode, Identify, Cluster) for tag in cls.tags
}
