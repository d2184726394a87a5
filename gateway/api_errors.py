"""What both vendor APIs share about DRF errors: one readable message from any error detail."""

from typing import Any

from rest_framework import exceptions


def error_message(exc: Exception) -> str:
    """A DRF exception's detail (a string, or nested dicts and lists of them) as one line."""
    detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
    if isinstance(detail, dict | list):
        return "; ".join(_flatten(detail))
    return str(detail)


def _flatten(detail: Any, prefix: str = "") -> list[str]:
    if isinstance(detail, dict):
        return [m for key, value in detail.items() for m in _flatten(value, f"{prefix}{key}: ")]
    if isinstance(detail, list):
        return [m for value in detail for m in _flatten(value, prefix)]
    return [f"{prefix}{detail}"]
