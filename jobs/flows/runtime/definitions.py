"""Stored job flows: ids, names, and creating, replacing and deleting them.

A flow is a `Job` of kind "flow": `job_key` is its name (a relative path is allowed) and
`content` its XML. A copy of the XML is kept under `$GATEWAY_DATA_DIR/flows/<name>`, so the
name's relative path exists on disk as the vendor's server creates it.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import logging
import re
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, router, transaction

from jobs.flows.language.parser import description_of
from jobs.flows.runtime.engines import forget_flow
from jobs.flows.runtime.rows import RowGetter
from jobs.models import Job, JobKind

logger = logging.getLogger(__name__)

MAX_NAME_BYTES = 4096
# Characters no Windows or Unix file name may hold; "/" and "\" separate path components.
_INVALID_CHARS = re.compile(r'[<>:"|?*\x00-\x1f]')
_RESERVED = re.compile(r"^(con|prn|aux|nul|com[1-9]|lpt[1-9])(\..*)?$", re.IGNORECASE)


class InvalidFlowName(ValueError):
    """A name with characters invalid on Windows or Unix, or one that escapes upwards."""


class FlowExists(Exception):
    """A flow with this name is already stored."""


class FlowTooLarge(Exception):
    """The content is over DATAFLUX_MAX_CONTENT_BYTES."""


class BadContent(ValueError):
    """The content is not text the gateway can store (not UTF-8)."""


def flow_id(name: str) -> str:
    """The standard base64 of the name: `Determine_Gender.ddf` → `RGV0ZXJtaW5lX0dlbmRlci5kZGY=`."""
    return base64.b64encode(name.encode("utf-8")).decode("ascii")


def name_from_id(identifier: str) -> str | None:
    """The name an id stands for, or None when it is not base64 of a UTF-8 name."""
    text = identifier.strip()
    # Some clients drop the padding, or send the URL-safe alphabet.
    text = text.replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None


def normalize_name(name: Any) -> str:
    """The stored form of a flow name; InvalidFlowName says why it cannot be stored."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidFlowName("The job flow name is empty.")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise InvalidFlowName(f"The job flow name is longer than {MAX_NAME_BYTES} bytes.")
    bad = _INVALID_CHARS.search(name)
    if bad:
        raise InvalidFlowName(
            f"The job flow name contains the character {bad.group()!r}, "
            "which is not valid in a file name on Windows or UNIX."
        )
    if name.startswith(("/", "\\")):
        raise InvalidFlowName("The job flow name must be a relative path.")
    parts = re.split(r"[/\\]", name)
    for part in parts:
        if part in ("", ".", ".."):
            raise InvalidFlowName(
                "The job flow name's path must not be empty, '.' or '..' in any component."
            )
        if part != part.rstrip(" ."):
            raise InvalidFlowName(f"The path component {part!r} ends with a space or a dot.")
        if _RESERVED.match(part):
            raise InvalidFlowName(f"{part!r} is a reserved device name on Windows.")
    return "/".join(parts)


def flows() -> list[Job]:
    return list(Job.objects.filter(kind=JobKind.FLOW, is_dynamic=False).order_by("job_key"))


def get_flow(name: str) -> Job | None:
    """The stored flow named `name`, with what an execution needs; its XML (`content`) and
    facts (`definition`) are loaded when first read (compiling, describing it)."""
    return _FLOW_BY_NAME.get(JobKind.FLOW, False, name)


def flow_for_run(name: str) -> Job | None:
    """The stored flow named `name`, for an execution, which only reads it.

    While the flow's row keeps its id and `updated_at` (every save sets it), the instance
    loaded last time is handed out again, so a run costs one SELECT of two columns and no
    model instance. The instance is shared between requests: never change it.
    """
    version = _FLOW_VERSION.row(JobKind.FLOW, False, name)
    if version is None:
        _for_runs.pop(name, None)
        return None
    known = _for_runs.get(name)
    if known is not None and known[0] == version:
        return known[1]
    job = get_flow(name)
    if job is not None:
        # Changed in between? Then the next run sees a newer version and loads it again.
        _for_runs[name] = (version, job)
    return job


def flow_as_found(pk: int, guid: str, name: str, version: str) -> Job:
    """The flow as a web process's `flow_for_run` found it (its id, guid, name and
    `engines.version_of`), for a worker to run without a query; its XML loads when first read."""
    found = {
        "id": pk,
        "guid": guid,
        "kind": JobKind.FLOW,
        "job_key": name,
        "updated_at": dt.datetime.fromisoformat(version) if version else None,
    }
    # In the model's field order, as Model.from_db matches values to fields by position.
    names = [f.attname for f in Job._meta.concrete_fields if f.attname in found]
    return Job.from_db(router.db_for_read(Job), names, [found[name] for name in names])


# Flows are looked up by name on every call: prepared SELECTs instead of fresh QuerySets, of
# the columns a run uses (each column fetched is a GIL release in Python 3.11's sqlite3).
_FLOW_BY_NAME = RowGetter(
    Job,
    where=("kind", "is_dynamic", "job_key"),
    fields=("id", "guid", "kind", "job_key", "updated_at"),
)
_FLOW_VERSION = RowGetter(Job, where=("kind", "is_dynamic", "job_key"), fields=("id", "updated_at"))
_for_runs: dict[str, tuple[tuple, Job]] = {}


def check_size(content: bytes) -> None:
    limit = settings.DATAFLUX_MAX_CONTENT_BYTES
    if len(content) > limit:
        raise FlowTooLarge(f"The job flow content is {len(content)} bytes; the limit is {limit}.")


def _text(content: bytes) -> str:
    check_size(content)
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadContent(f"The job flow content is not UTF-8 text: {exc.reason}.") from None


def _facts(content: str) -> dict[str, Any]:
    return {"description": description_of(content), "size": len(content.encode("utf-8"))}


def create_flow(name: Any, content: bytes) -> Job:
    """Store a new flow. The XML is not validated here: running it reports its problems."""
    stored_name = normalize_name(name)
    text = _text(content)
    if get_flow(stored_name) is not None:
        raise FlowExists(f"A job flow named {stored_name!r} already exists.")
    try:
        with transaction.atomic():
            job = Job.objects.create(
                kind=JobKind.FLOW, job_key=stored_name, content=text, definition=_facts(text)
            )
    except IntegrityError:
        raise FlowExists(f"A job flow named {stored_name!r} already exists.") from None
    _mirror(stored_name, text)
    return job


def replace_content(job: Job, content: bytes) -> Job:
    """New XML for a flow; the name stays. Engines with the old XML are replaced on next use."""
    text = _text(content)
    job.content = text
    job.definition = {**(job.definition or {}), **_facts(text)}
    job.save(update_fields=["content", "definition", "updated_at"])
    _mirror(job.job_key, text)
    return job


def delete_flow(job: Job) -> None:
    """Remove the flow; runs already going finish, idle engines for it are unloaded."""
    name, pk = job.job_key, job.pk
    job.delete()
    forget_flow(pk)
    path = _mirror_path(name)
    if path is not None and path.is_file():
        path.unlink(missing_ok=True)


def _mirror_path(name: str) -> Path | None:
    root = (Path(settings.DATA_DIR) / "flows").resolve()
    path = (root / name).resolve()
    # normalize_name already refused "..": this is the second lock on the same door.
    return path if path.is_relative_to(root) and path != root else None


def _mirror(name: str, text: str) -> None:
    path = _mirror_path(name)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:  # the database holds the flow; the file is a convenience copy
        logger.warning("could not write the copy of flow %s: %s", name, exc)
