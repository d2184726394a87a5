"""The execute request's members, checked at the edge before the flow sees them.

The body is the `…jobflow.metadata` container: a client may send back what GET …/metadata gave
it with the inputs filled in, so the container's own members are accepted; anything else is a
typo that would otherwise be ignored (a data table with `rows` instead of `data` ran over zero
rows and answered 200). Every unknown member is a 400 that names it and where it was.
"""

from __future__ import annotations

import difflib
from typing import Any

from dataflux.errors import BAD_INPUT, SasError

CONTAINER_MEMBERS = ("version", "id", "name", "description", "inputs", "outputs", "links")
TABLE_MEMBERS = ("metadata", "data")
COLUMN_MEMBERS = ("name", "type", "maxChars")


def check_execute_body(body: Any) -> dict[str, Any]:
    """The body's `inputs` (an object, `{}` when absent); SasError 400 on an unknown member."""
    if not isinstance(body, dict):
        raise SasError(400, "The body must be a JSON object with 'inputs'.", BAD_INPUT)
    _no_unknown(body, CONTAINER_MEMBERS, "the request body")
    inputs = body.get("inputs")
    if inputs is None:
        return {}
    if not isinstance(inputs, dict):
        raise SasError(
            400, "'inputs' must be an object of name-value pairs and data tables.", BAD_INPUT
        )
    for name, value in inputs.items():
        if isinstance(value, dict):
            _check_table(name, value)
    return inputs


def _check_table(name: str, table: dict[str, Any]) -> None:
    _no_unknown(table, TABLE_MEMBERS, f"data table {name!r}")
    metadata = table.get("metadata")
    if isinstance(metadata, list):
        for number, column in enumerate(metadata, 1):
            if isinstance(column, dict):
                where = f"data table {name!r}, metadata column {number}"
                _no_unknown(column, COLUMN_MEMBERS, where)


def _no_unknown(members: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    unknown = [key for key in members if key not in allowed]
    if not unknown:
        return
    member = unknown[0]
    close = difflib.get_close_matches(member, allowed, n=1, cutoff=0.5)
    if member.lower() in ("rows", "records", "values") and "data" in allowed:
        close = ["data"]
    hint = f"; did you mean {close[0]!r}?" if close else ""
    expected = ", ".join(repr(name) for name in allowed)
    raise SasError(
        400,
        f"Unknown member {member!r} in {where}{hint} (expected {expected}).",
        BAD_INPUT,
        [f"{where}: {member}" for member in unknown],
    )
