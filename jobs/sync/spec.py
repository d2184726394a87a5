"""Typed reader and writer specs: the one place a stored DataZen definition is read.

A job's `definition` is the vendor object exactly as the client sent it (it round-trips); the
API validates a body by parsing it here, and a run parses the stored copy here, so what is
accepted at save time is what runs. Everything after this module works on the typed specs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


class SpecError(ValueError):
    """A definition field the gateway cannot read; the message names the field."""


class UnsupportedFeature(SpecError):
    """A definition asks for something this gateway cannot do; the run fails naming it."""


# -- one set of reading rules for every field ---------------------------------------------------
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off", "null", "none")


def flag(value: Any, where: str = "", *, default: bool = False) -> bool:
    """DataZen booleans: JSON true/false, 0/1, or their spellings as strings."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise SpecError(f"{where or 'The value'} must be true or false, not {value!r}.")


def text(value: Any, where: str = "") -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    raise SpecError(f"{where or 'The value'} must be a string.")


def integer(value: Any, where: str = "", *, default: int = 0) -> int:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise SpecError(f"{where or 'The value'} must be a whole number.")
    try:
        number = int(str(value).strip()) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        raise SpecError(f"{where or 'The value'} must be a whole number, not {value!r}.") from None
    if isinstance(value, float) and value != number:
        raise SpecError(f"{where or 'The value'} must be a whole number, not {value!r}.")
    return number


def columns(value: Any) -> list[str]:
    """`UpsertColumns`: "a, b" or ["a", "b"]."""
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value or "").split(",") if part.strip()]


def json_value(value: Any, where: str) -> Any:
    """A field sent as a JSON value or as JSON text; None for null, "" or the text "null"."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise SpecError(
            f"{where} is a string but not valid JSON "
            f"(line {exc.lineno}, column {exc.colno}: {exc.msg})."
        ) from None


def json_object(value: Any, where: str) -> dict[str, Any]:
    """`JsonData` / `Options`: an object, a JSON string of one, null or ""."""
    value = json_value(value, where)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SpecError(f"{where} must be an object or null.")
    return value


def components(value: Any, where: str) -> list[dict[str, Any]]:
    """`PipelineDef` as a list of components: an array, a JSON string, one object, null or ""."""
    label = f"{where}.PipelineDef" if where else "PipelineDef"
    value = json_value(value, label)
    if value is None:
        return []
    if isinstance(value, dict):  # one component sent on its own
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise SpecError(f"{label} must be an array of pipeline components.")
    return value


def _present(value: Any) -> bool:
    """A setting that is really there: not null, "", {} or []."""
    return value not in (None, "", {}, [])


# Reader settings the vendor's definitions carry and this gateway's data path cannot honour yet.
# A run refuses them by name rather than ignoring them (a silent "success" would read nothing).
_UNSUPPORTED_READER_SETTINGS = {
    "DynamicParameter": "DynamicParameter (a reader run per parameter row)",
    "CDCSettings": "CDCSettings (native change data capture)",
    "BigDataSourceSettings": "BigDataSourceSettings",
    "Column2TableTxSettings": "Column2TableTxSettings",
    "EncryptionFile": "EncryptionFile (encrypted change logs)",
}

# Which JsonData settings say what kind of system a reader reads, when its connection does not.
SOURCE_SETTINGS = {
    "HttpSourceSettings": "HTTP",
    "DriveSourceSettings": "Drive",
    "MessagingOptions": "Messaging",
}


# SystemName values that say a reader's SQL is T-SQL.
SQL_SERVER_NAMES = {"sqlserver", "mssql", "azuresql"}


@dataclass(frozen=True)
class ReaderSpec:
    job_key: str
    connection: str
    sql: str = ""
    keys: list[str] = field(default_factory=list)
    timestamp_col: str = ""
    initialize: bool = False
    path: str = ""
    pipeline: list[dict[str, Any]] = field(default_factory=list)
    keep_logs: bool = True
    top_n: int | None = None
    deleted_method: int = 0
    deleted_sql: str = ""
    # The kind of system named by the definition itself (HttpSourceSettings…), '' when the
    # connection decides; and that kind's own settings object, for its connector.
    source_kind: str = ""
    source_settings: dict[str, Any] = field(default_factory=dict)
    # JsonData.DynamicParameter as sent (its connector reads it: HTTP readers run per row).
    dynamic_parameter: dict[str, Any] = field(default_factory=dict)
    unsupported: list[str] = field(default_factory=list)
    # "tsql" when SystemName says the SQL was written for SQL Server: a database reader on
    # another kind of database translates it (jobs.systems.db.tsql).
    sql_dialect: str = ""

    @property
    def strategy(self) -> str:
        if self.timestamp_col:
            return "timestamp"
        return "full" if self.keys else "append"

    @classmethod
    def parse(cls, definition: dict[str, Any], where: str = "JobReader") -> ReaderSpec:
        data = json_object(definition.get("JsonData"), f"{where}.JsonData")
        top_override = integer(data.get("TopNOverride"), f"{where}.JsonData.TopNOverride")
        bypass = flag(data.get("BypassTopN"), f"{where}.JsonData.BypassTopN")
        kinds = [(name, kind) for name, kind in SOURCE_SETTINGS.items() if _present(data.get(name))]
        if len(kinds) > 1:
            raise SpecError(
                f"{where}.JsonData has {' and '.join(n for n, _ in kinds)}: a reader reads one "
                "kind of system."
            )
        settings = data.get(kinds[0][0]) if kinds else None
        if not kinds:
            # The vendor's own exports carry a drive reader's settings flat in JsonData.
            settings = {k: v for k, v in data.items() if k.startswith("Drive")}
        elif kinds[0][1] == "Drive":
            # Read by the drive connector's own parser now, so a bad setting is refused at save.
            from jobs.systems.drive.settings import SourceSettings

            if not isinstance(settings, dict):
                raise SpecError(f"{where}.JsonData.DriveSourceSettings must be an object.")
            SourceSettings.parse(settings, f"{where}.JsonData.DriveSourceSettings")
        source_kind = kinds[0][1] if kinds else ""
        source_settings = settings if isinstance(settings, dict) else {}
        # An HTTP reader's high-water mark is a timestamp strategy on a response column.
        timestamp_col = text(definition.get("TimestampCol"), f"{where}.TimestampCol") or text(
            source_settings.get("HighWaterMark"), f"{where}.HttpSourceSettings.HighWaterMark"
        )
        # Readers that run once per parameter row (HTTP) take DynamicParameter; others refuse.
        per_row = {"DynamicParameter"} if source_kind == "HTTP" else set()
        if source_kind == "HTTP":
            _check_http_reader(source_settings, data.get("DynamicParameter"), where)
        if source_kind == "Messaging":
            # The messaging connector's own parser, so a bad option is refused at save time.
            from jobs.systems.messaging.settings import consumer_settings

            consumer_settings(settings, f"{where}.JsonData.MessagingOptions")
        return cls(
            job_key=text(definition.get("JobKey"), f"{where}.JobKey"),
            connection=text(definition.get("ConnectionString"), f"{where}.ConnectionString"),
            sql=text(definition.get("SqlRead"), f"{where}.SqlRead"),
            keys=columns(definition.get("UpsertColumns")),
            timestamp_col=timestamp_col,
            initialize=flag(definition.get("Initialize"), f"{where}.Initialize"),
            path=text(definition.get("Path"), f"{where}.Path"),
            pipeline=components(definition.get("PipelineDef"), where),
            keep_logs=flag(
                data.get("KeepChangedLogFiles"),
                f"{where}.JsonData.KeepChangedLogFiles",
                default=True,
            ),
            top_n=top_override if top_override > 0 and not bypass else None,
            deleted_method=integer(
                data.get("DeletedRecordsMethod"), f"{where}.JsonData.DeletedRecordsMethod"
            ),
            deleted_sql=text(data.get("DeletedRecordsSQL"), f"{where}.JsonData.DeletedRecordsSQL"),
            source_kind=source_kind,
            source_settings=source_settings,
            dynamic_parameter=json_object(
                data.get("DynamicParameter"), f"{where}.JsonData.DynamicParameter"
            )
            if "DynamicParameter" in per_row
            else {},
            unsupported=[
                label
                for name, label in _UNSUPPORTED_READER_SETTINGS.items()
                if _present(data.get(name)) and name not in per_row
            ],
            sql_dialect="tsql"
            if text(definition.get("SystemName"), f"{where}.SystemName").lower() in SQL_SERVER_NAMES
            else "",
        )


def _check_http_reader(settings: dict[str, Any], parameter: Any, where: str) -> None:
    """The HTTP connector reads its own settings (jobs.systems.http.settings); reading them
    here too refuses a bad one when the job is saved, not at its first run."""
    # jobs.systems.http.settings builds on this module: a module-level import is a cycle.
    from jobs.systems.http.settings import dynamic_parameter, source_settings

    source_settings(settings, f"{where}.JsonData.HttpSourceSettings")
    if _present(parameter):
        dynamic_parameter(parameter, f"{where}.JsonData.DynamicParameter")


# Which Options say what kind of system a writer writes to.
_WRITER_KIND_OPTIONS = {
    "HttpUpsertSettings": "HTTP",
    "HttpDeleteSettings": "HTTP",
    "MessagingUpsertSettings": "Messaging",
    "MessagingDeleteSettings": "Messaging",
}


@dataclass(frozen=True)
class WriterSpec:
    job_key: str
    connection: str
    target_object: str
    source_key: str
    path: str = ""
    keys: list[str] = field(default_factory=list)
    propagate_delete: bool = False
    batch_count: int = 10_000
    exec_timeout: int = 0
    auto_recreate: bool = False
    pipeline: list[dict[str, Any]] = field(default_factory=list)
    init_script: str = ""
    final_script: str = ""
    initial_execution_id: str = ""
    # The kind of system named by the definition (TargetSystem, Options.Http…Settings).
    target_kind: str = ""
    # An HTTP or messaging target's own settings (Options, UpsertScript, DeleteScript), for
    # its connector.
    target_definition: dict[str, Any] = field(default_factory=dict)
    unsupported: list[str] = field(default_factory=list)

    @classmethod
    def parse(
        cls,
        definition: dict[str, Any],
        *,
        source_key: str = "",
        source_path: str = "",
        where: str = "JobWriter",
    ) -> WriterSpec:
        options = json_object(definition.get("Options"), f"{where}.Options")
        kinds = {kind for name, kind in _WRITER_KIND_OPTIONS.items() if _present(options.get(name))}
        target_system = text(definition.get("TargetSystem"), f"{where}.TargetSystem")
        if target_system.upper() in ("HTTP", "DRIVE", "MESSAGING"):
            kinds.add(
                {"HTTP": "HTTP", "DRIVE": "Drive", "MESSAGING": "Messaging"}[target_system.upper()]
            )
        unsupported = []
        if kinds == {"HTTP"}:
            # (built on this module, as above)
            from jobs.systems.http.settings import writer_settings

            writer_settings(definition, where)  # refused at save time, naming the field
        if kinds == {"Messaging"}:
            # Connectors import this module: their parsers are imported when used.
            from jobs.systems.messaging.settings import producer_settings

            producer_settings(definition, where)  # refused at save time, naming the field
        if len(kinds) > 1:
            unsupported.append(f"targets of several kinds ({', '.join(sorted(kinds))})")
        for name in ("UpsertScript", "DeleteScript"):
            if text(definition.get(name), f"{where}.{name}") and not kinds:
                unsupported.append(f"{name} (a script per row on a database target)")
        return cls(
            job_key=text(definition.get("JobKey"), f"{where}.JobKey"),
            connection=text(definition.get("ConnectionString"), f"{where}.ConnectionString"),
            target_object=text(definition.get("TargetObject"), f"{where}.TargetObject"),
            source_key=text(definition.get("SourceJobKey"), f"{where}.SourceJobKey") or source_key,
            path=text(definition.get("Path"), f"{where}.Path") or source_path,
            keys=columns(definition.get("UpsertColumns")),
            propagate_delete=flag(definition.get("PropagateDelete"), f"{where}.PropagateDelete"),
            batch_count=integer(options.get("BatchCount"), f"{where}.Options.BatchCount") or 10_000,
            exec_timeout=integer(options.get("ExecTimeout"), f"{where}.Options.ExecTimeout"),
            auto_recreate=flag(options.get("AutoRecreate"), f"{where}.Options.AutoRecreate"),
            pipeline=components(definition.get("PipelineDef"), where),
            init_script=text(options.get("InitScript"), f"{where}.Options.InitScript")
            or text(definition.get("InitScript"), f"{where}.InitScript"),
            final_script=text(options.get("FinalScript"), f"{where}.Options.FinalScript")
            or text(definition.get("FinalScript"), f"{where}.FinalScript"),
            initial_execution_id=str(definition.get("InitialExecutionId") or "").strip(),
            target_kind=sorted(kinds)[0] if len(kinds) == 1 else "",
            target_definition={
                "Options": options,
                "UpsertScript": definition.get("UpsertScript"),
                "DeleteScript": definition.get("DeleteScript"),
            }
            if kinds in ({"HTTP"}, {"Messaging"})
            else {},
            unsupported=unsupported
            + (
                ["targets of several kinds (" + ", ".join(sorted(kinds)) + ")"]
                if len(kinds) > 1
                else []
            ),
        )


@dataclass(frozen=True)
class RunOptions:
    """The query flags of a start (`resync`, `recreate`, `testrun`), typed."""

    resync: bool = False
    recreate: bool = False
    testrun: bool = False

    @classmethod
    def of(cls, options: dict[str, Any] | None) -> RunOptions:
        options = options or {}
        return cls(
            resync=flag(options.get("resync"), "resync"),
            recreate=flag(options.get("recreate"), "recreate"),
            testrun=flag(options.get("testrun"), "testrun"),
        )
