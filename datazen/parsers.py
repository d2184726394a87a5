"""JSON bodies that say where they broke, whatever Content-Type the client sent."""

import json
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

from gateway import limits


class DataZenJSONParser(BaseParser):
    """JSON with line and column in the error; DataZen clients do not always label it."""

    media_type = "application/json"

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        raw = stream.read() if stream is not None else b""
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as exc:
            raise ParseError(f"The body is not valid {encoding}: {exc}") from exc
        if not text.strip():
            raise ParseError("The body is empty; a JSON document was expected.")
        try:
            return limits.loads(text)
        except json.JSONDecodeError as exc:
            raise ParseError(
                f"Malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}."
            ) from exc
        except limits.JSONLimitError as exc:
            raise ParseError(str(exc)) from None


class AnyTypeJSONParser(DataZenJSONParser):
    """The same parser for bodies sent as text/plain or curl's default form type."""

    media_type = "*/*"
