"""Helpers for HTTP connector tests: a stored HTTP connection and direct jobs reading it."""

from __future__ import annotations

import json
from typing import Any

from jobs.models import ConnectionString, ConnectionType, Job
from tests.syncdb import direct_job


def http_connection(base_url: str, key: str = "api", **members: Any) -> str:
    value = {"service": "http", "baseUrl": base_url, **members}
    ConnectionString.objects.update_or_create(
        key=key,
        defaults={
            "system": "HTTP",
            "connection_type": ConnectionType.HTTP,
            "encrypted_value": "",
        },
    )
    stored = ConnectionString.objects.get(key=key)
    stored.value = json.dumps(value)
    stored.save()
    return key


def http_source_job(
    target_url: str,
    settings: dict[str, Any],
    *,
    connection: str = "api",
    keys: str = "id",
    target: str = "items",
    propagate_delete: bool = True,
    json_data: dict[str, Any] | None = None,
    reader: dict[str, Any] | None = None,
) -> Job:
    """A direct job: an HTTP reader (HttpSourceSettings) into a database table."""
    source = {"IsRESTRequest": True, "HTTPVerb": "GET", "ApplyContentTx": True, **settings}
    return direct_job(
        connection,
        target_url,
        sql="",
        target=target,
        keys=keys,
        propagate_delete=propagate_delete,
        json_data={"HttpSourceSettings": source, **(json_data or {})},
        reader=reader,
    )
