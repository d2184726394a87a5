"""A consumer's `JsonData.MessagingOptions` and a producer's `Options.Messaging…Settings`, typed.

Read here once, at save time (jobs.sync.spec calls these) and at run time, so what is accepted
when a job is saved is what runs. docs/messaging.md explains each field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from jobs.sync.spec import SpecError, columns, flag, integer, json_object, text
from jobs.systems.http.connection import header_pairs

# MessageProcessing: what becomes of a message's content.
RAW = 0  # kept whole in MessagingContentColumn (the vendor's sample: a pipeline filters `_raw`)
JSON = 1  # parsed as JSON: RootPath selects the rows, each member a column
XML = 2  # parsed as XML: RootPath is an XPath to the row elements
PROCESSING = {RAW: "raw", JSON: "json", XML: "xml"}

MAX_BATCH = 50_000
# Broker properties a consumer can add as columns (IncludeMetadata / MetadataFields).
METADATA_FIELDS = ("_message_id", "_subject", "_timestamp", "_redelivered")


@dataclass(frozen=True)
class ConsumerSettings:
    processing: int = RAW
    columns: list[str] = field(default_factory=list)
    flush_seconds: float = 1.0
    root_path: str = ""
    content_column: str = "_raw"
    batch_count: int = 100
    sample: str = ""
    queue_override: str = ""
    group_name: str = ""
    include_metadata: bool = False
    include_headers: bool = False
    metadata_fields: list[str] = field(default_factory=list)
    header_fields: list[str] = field(default_factory=list)


def consumer_settings(value: Any, where: str = "JsonData.MessagingOptions") -> ConsumerSettings:
    data = json_object(value, where)
    processing = integer(data.get("MessageProcessing"), f"{where}.MessageProcessing")
    if processing not in PROCESSING:
        raise SpecError(
            f"{where}.MessageProcessing {processing} is not one of "
            + ", ".join(f"{k} ({v})" for k, v in PROCESSING.items())
            + "."
        )
    batch_enabled = flag(data.get("MessagingBatchEnabled"), f"{where}.MessagingBatchEnabled")
    count = integer(data.get("MessagingBatchCount"), f"{where}.MessagingBatchCount", default=100)
    if not 0 < count <= MAX_BATCH:
        raise SpecError(f"{where}.MessagingBatchCount must be between 1 and {MAX_BATCH}.")
    ttl_raw = data.get("MessagingFlushTTL")
    try:
        ttl = float(ttl_raw) if ttl_raw not in (None, "") else 1.0
    except (TypeError, ValueError):
        raise SpecError(f"{where}.MessagingFlushTTL must be a number of seconds.") from None
    if not 0 < ttl <= 3600:
        raise SpecError(f"{where}.MessagingFlushTTL must be between 0 and 3600 seconds.")
    metadata = columns(data.get("MetadataFields"))
    unknown = [name for name in metadata if name not in METADATA_FIELDS]
    if unknown:
        raise SpecError(
            f"{where}.MetadataFields {', '.join(unknown)} unknown (known: "
            f"{', '.join(METADATA_FIELDS)})."
        )
    if data.get("PartitionKeys") not in (None, "", []):
        raise SpecError(
            f"{where}.PartitionKeys (Kafka partitions) is not supported: none of the brokers "
            "here has partitions."
        )
    sample = text(data.get("MessagingSampleMsg"), f"{where}.MessagingSampleMsg")
    settings = ConsumerSettings(
        processing=processing,
        columns=columns(data.get("MessagingColumns")),
        flush_seconds=ttl,
        root_path=text(data.get("RootPath"), f"{where}.RootPath"),
        content_column=text(data.get("MessagingContentColumn"), f"{where}.MessagingContentColumn")
        or ("_raw" if processing == RAW else ""),
        batch_count=count if batch_enabled else 1,
        sample=sample,
        queue_override=text(data.get("QueueNameOverride"), f"{where}.QueueNameOverride"),
        group_name=text(data.get("MessagingGroupName"), f"{where}.MessagingGroupName"),
        include_metadata=flag(data.get("IncludeMetadata"), f"{where}.IncludeMetadata"),
        include_headers=flag(data.get("IncludeHeaders"), f"{where}.IncludeHeaders"),
        metadata_fields=metadata,
        header_fields=columns(data.get("HeaderFields")),
    )
    if processing == RAW and not settings.content_column:
        raise SpecError(
            f"{where}: MessageProcessing 0 keeps the content whole and needs a "
            "MessagingContentColumn."
        )
    if sample and processing == JSON:
        try:
            json.loads(sample)
        except json.JSONDecodeError as exc:
            raise SpecError(
                f"{where}.MessagingSampleMsg is not JSON (line {exc.lineno}, column "
                f"{exc.colno}: {exc.msg}); the schema is inferred from it."
            ) from None
    return settings


@dataclass(frozen=True)
class Destination:
    """Where a producer's upserts or deletes go; empty fields fall back on the connection."""

    system_type: str = ""
    topic: str = ""  # queue/routing key, MQTT topic, NATS subject, Redis stream
    field_key: list[str] = field(default_factory=list)
    key_separator: str = "|"
    headers: list[tuple[str, str]] = field(default_factory=list)
    script: str = ""

    @property
    def configured(self) -> bool:
        return bool(self.system_type or self.topic or self.script)


@dataclass(frozen=True)
class ProducerSettings:
    upsert: Destination
    delete: Destination
    passthrough: bool = False
    batch_count: int = 1000


_SYSTEM_TYPES = {
    "rabbitmq": "rabbitmq",
    "mqtt": "mqtt",
    "nats": "nats",
    "redis": "redis",
    "kafka": "kafka",
    "azeventhub": "eventhub",
    "eventhub": "eventhub",
}


def _destination(value: Any, script: Any, where: str) -> Destination:
    data = json_object(value, where)
    system_type = text(data.get("SystemType"), f"{where}.SystemType").lower()
    if system_type and system_type not in _SYSTEM_TYPES:
        raise SpecError(
            f"{where}.SystemType {system_type!r} is not one of {', '.join(sorted(_SYSTEM_TYPES))}."
        )
    topic = text(data.get("TopicName"), f"{where}.TopicName") or text(
        data.get("EventHubName"), f"{where}.EventHubName"
    )
    try:
        headers = header_pairs(data.get("Headers"), f"{where}.Headers")
    except SpecError as exc:
        raise SpecError(str(exc)) from None
    return Destination(
        system_type=_SYSTEM_TYPES.get(system_type, ""),
        topic=topic,
        field_key=columns(data.get("FieldKey")),
        key_separator=text(data.get("KeyFieldSeparator"), f"{where}.KeyFieldSeparator") or "|",
        headers=headers,
        script=script if isinstance(script, str) else "",
    )


def producer_settings(definition: dict[str, Any], where: str = "JobWriter") -> ProducerSettings:
    options = json_object(definition.get("Options"), f"{where}.Options")
    for name in ("UpsertScript", "DeleteScript"):
        text(definition.get(name), f"{where}.{name}")
    return ProducerSettings(
        upsert=_destination(
            options.get("MessagingUpsertSettings"),
            definition.get("UpsertScript"),
            f"{where}.Options.MessagingUpsertSettings",
        ),
        delete=_destination(
            options.get("MessagingDeleteSettings"),
            definition.get("DeleteScript"),
            f"{where}.Options.MessagingDeleteSettings",
        ),
        passthrough=flag(
            options.get("IsPassthroughMessaging"), f"{where}.Options.IsPassthroughMessaging"
        ),
        batch_count=integer(options.get("BatchCount"), f"{where}.Options.BatchCount") or 1000,
    )
