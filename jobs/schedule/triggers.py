"""DataZen job triggers (`JsonData.JobTriggers`): start other jobs when a job's run ends.

Kinds, as the vendor names them: On Completion, On Success (always), On Success (with data),
On Failure. A chain of triggered runs carries the jobs it went through in
`Execution.options["trigger_chain"]`, so a cycle stops instead of looping (docs/schedules.md).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Q

from jobs.agent import is_running
from jobs.models import Execution, ExecutionStatus, Job, JobKind, LogLevel
from jobs.runner import ExecutionContext
from jobs.services import JobDisabled, start_job
from jobs.sync import spec

logger = logging.getLogger(__name__)

ON_COMPLETION = "OnCompletion"
ON_SUCCESS = "OnSuccess"
ON_SUCCESS_WITH_DATA = "OnSuccessWithData"
ON_FAILURE = "OnFailure"
KINDS = (ON_COMPLETION, ON_SUCCESS, ON_SUCCESS_WITH_DATA, ON_FAILURE)

# Spellings a client may send, compared without case, spaces or punctuation. Numbers follow
# the order the vendor lists the kinds in.
_KIND_NAMES = {
    ON_COMPLETION: ("oncompletion", "completion", "oncomplete", "complete", "completed",
                    "always", "onend", "0"),
    ON_SUCCESS: ("onsuccess", "onsuccessalways", "success", "successalways", "succeeded",
                 "onsucceeded", "1"),
    ON_SUCCESS_WITH_DATA: ("onsuccesswithdata", "successwithdata", "onsuccessdata", "withdata",
                           "ondata", "onsuccesswithchanges", "2"),
    ON_FAILURE: ("onfailure", "failure", "onfail", "fail", "failed", "onerror", "error", "3"),
}  # fmt: skip
_KIND_BY_NAME = {name: kind for kind, names in _KIND_NAMES.items() for name in names}

_KEY_FIELDS = ("JobKey", "TargetJobKey", "TriggerJobKey", "Key", "JobName", "Job")
_GUID_FIELDS = ("Guid", "JobGuid", "TargetGuid", "TargetJobGuid", "TriggerJobGuid", "JobId")
_KIND_FIELDS = ("TriggerType", "Type", "Trigger", "Condition", "When", "RunCondition", "Kind")


@dataclass(frozen=True)
class Trigger:
    kind: str
    job_key: str = ""
    guid: str = ""

    def as_json(self) -> dict[str, str]:
        """The shape the gateway documents and gives back."""
        return {"JobKey": self.job_key, "Guid": self.guid, "TriggerType": self.kind}

    def describe(self) -> str:
        return self.job_key or self.guid


def trigger_kind(value: Any) -> str:
    text = re.sub(r"[^a-z0-9]", "", str(value).lower())
    kind = _KIND_BY_NAME.get(text)
    if kind is None:
        raise ValueError(
            f"unknown TriggerType {value!r} (OnCompletion, OnSuccess, OnSuccessWithData, "
            "OnFailure, or 0-3 in that order)"
        )
    return kind


def _field(entry: dict[str, Any], names: tuple[str, ...]) -> Any:
    lowered = {key.lower(): value for key, value in entry.items()}
    for name in names:
        value = lowered.get(name.lower())
        if value not in (None, ""):
            return value
    return None


def _enabled(entry: dict[str, Any]) -> bool:
    disabled = _field(entry, ("Disabled",))
    enabled = _field(entry, ("Enabled", "Active"))
    if disabled is not None and str(disabled).lower() in ("true", "1"):
        return False
    return not (enabled is not None and str(enabled).lower() in ("false", "0"))


def parse_triggers(value: Any) -> list[Trigger]:
    """JobTriggers as clients send it: a list (or JSON text) of objects, or of job keys.

    An object names its job by JobKey and/or Guid and its kind by TriggerType; a bare string is
    a job key started On Success. Entries marked Disabled (or Enabled: false) are left out.
    Raises ValueError for an entry that names no job or an unknown kind.
    """
    if value is None or value == "":
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            value = [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise ValueError("JobTriggers must be a list")
    triggers: list[Trigger] = []
    for number, entry in enumerate(value, 1):
        if isinstance(entry, str):
            triggers.append(Trigger(ON_SUCCESS, job_key=entry.strip()))
            continue
        if not isinstance(entry, dict):
            raise ValueError(f"JobTriggers entry {number} is not an object or a job key")
        key = str(_field(entry, _KEY_FIELDS) or "").strip()
        guid = str(_field(entry, _GUID_FIELDS) or "").strip()
        if not key and not guid:
            raise ValueError(f"JobTriggers entry {number} names no job (JobKey or Guid)")
        raw_kind = _field(entry, _KIND_FIELDS)
        try:
            kind = trigger_kind(raw_kind if raw_kind is not None else ON_SUCCESS)
        except ValueError as exc:
            raise ValueError(f"JobTriggers entry {number}: {exc}") from None
        if _enabled(entry):
            triggers.append(Trigger(kind, job_key=key, guid=guid))
    return triggers


def normalize_triggers(value: Any) -> list[dict[str, str]]:
    """JobTriggers in the documented shape: [{"JobKey", "Guid", "TriggerType"}]."""
    return [trigger.as_json() for trigger in parse_triggers(value)]


def validate_triggers(json_data: Any) -> None:
    """Refuse (ValueError) JobTriggers the gateway could not act on, when a job is saved.

    Jobs named by a trigger need not exist yet: they are looked up when the trigger fires.
    """
    data = _json_data({"JsonData": json_data}) if not isinstance(json_data, list) else None
    parse_triggers(json_data if data is None else data.get("JobTriggers"))


def _json_data(definition: Any) -> dict[str, Any]:
    if not isinstance(definition, dict):
        return {}
    try:
        return spec.json_object(definition.get("JsonData"), "JsonData")
    except spec.SpecError:
        return {}  # refused when the job was saved; a run does not fail on its triggers


def job_triggers(job: Job) -> list[Trigger]:
    """The triggers a job's definition enables (JobTriggersEnabled, with JobTriggers)."""
    definition = job.definition if isinstance(job.definition, dict) else {}
    data = _json_data(definition)
    raw = data.get("JobTriggers", definition.get("JobTriggers"))
    flag = data.get("JobTriggersEnabled", definition.get("JobTriggersEnabled"))
    # No flag at all but a list: the client meant them on. An explicit false turns them off.
    try:
        if not spec.flag(flag, "JobTriggersEnabled", default=True):
            return []
    except spec.SpecError:
        return []
    try:
        return parse_triggers(raw)
    except ValueError as exc:
        logger.warning("%s has JobTriggers that cannot be read: %s", job.job_key, exc)
        return []


def applies(kind: str, outcome: Execution) -> bool:
    """Whether a trigger of `kind` fires for a run that ended like `outcome`."""
    succeeded = outcome.status == ExecutionStatus.SUCCEEDED
    if kind == ON_COMPLETION:
        return outcome.status in (ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED)
    if kind == ON_SUCCESS:
        return succeeded
    if kind == ON_SUCCESS_WITH_DATA:
        return succeeded and has_data(outcome)
    return outcome.status == ExecutionStatus.FAILED


def has_data(execution: Execution) -> bool:
    """The run found changes: rows read or deleted, or written by a direct job's writer."""
    counts = (
        execution.record_count,
        execution.delete_count,
        execution.records_direct_written,
        execution.records_direct_deleted,
    )
    return any(count > 0 for count in counts)


def _whole_run(execution: Execution) -> tuple[Job, Execution, Execution] | None:
    """(job whose triggers apply, run giving the outcome, run carrying the chain), or None.

    A direct job's run is its reader's run: the sync engine runs the writer inside it, under
    the same execution guid, and the reader fails when the writer does. So the reader's
    triggers fire once, when the reader's run ends, and the writer's end inside it fires
    nothing. (Should a writer run end after its reader's, the reader's triggers fire then.)
    """
    job = execution.job
    if job is None or job.is_dynamic:
        return None
    if job.kind == JobKind.READER and job.direct_writer_id is not None:
        writer_run = _same_guid(execution, job.direct_writer_id)
        if writer_run is not None and not writer_run.is_finished:
            return None  # a writer still applying: its end fires them
        if writer_run is None:
            return job, execution, execution
        return job, _combined(execution, writer_run, execution.status), execution
    reader = Job.objects.filter(direct_writer=job).first() if job.kind == JobKind.WRITER else None
    if reader is not None:
        reader_run = _same_guid(execution, reader.pk)
        if reader_run is None or not reader_run.is_finished:
            return None  # the reader's run is still going: its end fires them
        return reader, _combined(reader_run, execution, execution.status), reader_run
    return job, execution, execution


def _same_guid(execution: Execution, job_id: int) -> Execution | None:
    return Execution.objects.filter(guid=execution.guid, job_id=job_id).order_by("-id").first()


def _combined(reader_run: Execution, writer_run: Execution, status: str) -> Execution:
    """A direct job's outcome: `status`, with data if either side had rows."""
    outcome = Execution(status=status)
    outcome.record_count = reader_run.record_count + writer_run.record_count
    outcome.delete_count = reader_run.delete_count + writer_run.delete_count
    outcome.records_direct_written = (
        reader_run.records_direct_written + writer_run.records_direct_written
    )
    outcome.records_direct_deleted = (
        reader_run.records_direct_deleted + writer_run.records_direct_deleted
    )
    return outcome


def _target(trigger: Trigger) -> Job | None:
    stored = Job.objects.filter(is_dynamic=False)
    if trigger.guid:
        found = stored.filter(guid=trigger.guid).first()
        if found is not None:
            return found
    if trigger.job_key:
        return stored.filter(Q(job_key=trigger.job_key)).first()
    return None


def fire_after(execution: Execution) -> list[Execution]:
    """Start the jobs the finished run's triggers name; returns the runs it started.

    Called by the runner once a run has ended. It never raises: a trigger that cannot fire is
    written to the finished run's log instead.
    """
    if execution.job_id is None:
        return []
    try:
        finished = Execution.objects.select_related("job").filter(pk=execution.pk).first()
        return _fire(finished) if finished is not None else []
    except Exception:  # the run is over either way; a trigger problem must not undo that
        logger.exception("job triggers after execution %s failed", execution.pk)
        return []


def _fire(execution: Execution) -> list[Execution]:
    whole = _whole_run(execution)
    if whole is None:
        return []
    job, outcome, chained = whole
    due = [t for t in job_triggers(job) if applies(t.kind, outcome)]
    if not due:
        return []
    log = _Log(execution)
    if not is_running():
        log(f"The agent is stopped: job triggers not fired ({_names(due)}).", LogLevel.WARNING)
        return []
    chain = [str(guid) for guid in (chained.options or {}).get("trigger_chain", [])]
    chain.append(job.guid)
    started: list[Execution] = []
    for trigger in due:
        target = _target(trigger)
        if target is None:
            log(f"Trigger {trigger.kind}: job '{trigger.describe()}' not found.", LogLevel.WARNING)
            continue
        if target.guid in chain:
            log(
                f"Trigger {trigger.kind}: '{target.job_key}' not started, it is already in this "
                f"trigger chain ({len(chain)} jobs): a cycle.",
                LogLevel.WARNING,
            )
            continue
        if len(chain) >= settings.GATEWAY_TRIGGER_MAX_DEPTH:
            log(
                f"Trigger {trigger.kind}: '{target.job_key}' not started, the trigger chain is "
                f"at its limit of {settings.GATEWAY_TRIGGER_MAX_DEPTH} jobs.",
                LogLevel.WARNING,
            )
            continue
        options = {
            "trigger": "job-trigger",
            "trigger_type": trigger.kind,
            "triggered_by": execution.guid,
            "trigger_chain": chain,
        }
        try:
            run = start_job(target, options=options, requested_by=f"trigger:{job.job_key}")
        except JobDisabled:
            log(f"Trigger {trigger.kind}: '{target.job_key}' is disabled.", LogLevel.WARNING)
            continue
        if run is None:
            log(f"Trigger {trigger.kind}: '{target.job_key}' is already running.", LogLevel.INFO)
            continue
        log(f"Trigger {trigger.kind}: started '{target.job_key}'.", LogLevel.INFO)
        started.append(run)
    return started


def _names(triggers: list[Trigger]) -> str:
    return ", ".join(f"{t.kind} → {t.describe()}" for t in triggers)


class _Log:
    """Writes to the finished run's own log, where a user looks for why nothing started."""

    def __init__(self, execution: Execution) -> None:
        self.context = ExecutionContext(execution)

    def __call__(self, message: str, level: int) -> None:
        self.context.log(message, level)
