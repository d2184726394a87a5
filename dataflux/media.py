"""The SAS media types, and the parsers, renderer and negotiation that accept them all.

Clients send the vendor media types or plain `application/json`; both are read as JSON. The
answer is JSON labelled with the resource's own SAS media type, whatever `Accept` asked for.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer, JSONRenderer

from gateway import limits

COLLECTION = "application/vnd.sas.collection+json"
LINK = "application/vnd.sas.link"
ERROR = "application/vnd.sas.error+json"
JOBFLOW = "application/vnd.sas.datamgmt.jobflow+json"
DEFINITION = "application/vnd.sas.datamgmt.jobflow.definition+json"
SUMMARY = "application/vnd.sas.datamgmt.jobflow.definition.summary"
METADATA = "application/vnd.sas.datamgmt.jobflow.metadata+json"
CONTENT = "application/vnd.sas.datamgmt.jobflow.content+xml"
ENGINE = "application/vnd.sas.datamgmt.engine"
JSON = "application/json"
TEXT = "text/plain"


class SasJSONParser(BaseParser):
    """JSON under any JSON-ish media type; an empty body is `{}`; errors say where it broke."""

    media_type = JSON

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        raw = stream.read() if stream is not None else b""
        if not raw or not raw.strip():
            return {}
        try:
            return limits.loads(raw.decode("utf-8-sig"))
        except UnicodeDecodeError as exc:
            raise ParseError(f"The request body is not UTF-8: {exc.reason}.") from None
        except json.JSONDecodeError as exc:
            raise ParseError(
                f"Malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}."
            ) from None
        except limits.JSONLimitError as exc:
            raise ParseError(str(exc)) from None


class RawBodyParser(BaseParser):
    """The job flow XML and text/plain bodies, as bytes."""

    media_type = "*/*"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        return stream.read() if stream is not None else b""


class SasJSONRenderer(JSONRenderer):
    media_type = JSON
    charset = None


class XMLContentRenderer(BaseRenderer):
    media_type = CONTENT
    format = "xml"
    charset = "utf-8"

    def render(
        self, data: Any, accepted_media_type: Any = None, renderer_context: Any = None
    ) -> Any:
        return data.encode("utf-8") if isinstance(data, str) else data


class SasNegotiation(BaseContentNegotiation):
    """Pick the JSON parser for JSON-ish bodies, the raw one for XML and text; never 406."""

    def select_parser(self, request: Any, parsers: Iterable[BaseParser]) -> BaseParser | None:
        parsers = list(parsers)
        content_type = (request.content_type or "").split(";")[0].strip().lower()
        wants_raw = "xml" in content_type or content_type.startswith(("text/", "application/oct"))
        for parser in parsers:
            if isinstance(parser, RawBodyParser) == wants_raw:
                return parser
        return parsers[0] if parsers else None

    def select_renderer(
        self, request: Any, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type
