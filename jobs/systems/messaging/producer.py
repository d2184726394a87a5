"""A messaging target: one message per change-log row, published with broker confirms.

The body is `UpsertScript`/`DeleteScript` with `{{column}}` placeholders, the consumed message
as it came (`IsPassthroughMessaging`), or the row as a JSON object. Brokers have no
transaction to record a position in, so the writer's position is a small file under the data
directory that moves only past rows the broker confirmed. Each message carries an id made of
the writer, the change log and the row, so a chunk sent again after a dropped connection
carries the same ids: JetStream drops the copies itself, the gateway's consumers skip them
(docs/messaging.md, delivery guarantees).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from django.conf import settings as django_settings

from jobs.sync.changelog import Frame, Header
from jobs.sync.spec import WriterSpec
from jobs.systems.base import ApplyHooks, ApplyResult, Reader, UnsupportedSystem
from jobs.systems.batch import Batch
from jobs.systems.http import template
from jobs.systems.messaging.brokers import Broker, BrokerError, Outgoing
from jobs.systems.messaging.connection import MessagingConnectionSettings
from jobs.systems.messaging.settings import Destination, producer_settings
from jobs.systems.positions import WriterPosition

# A dropped connection is retried this many times (backoff doubling from RETRY_FIRST_WAIT).
PUBLISH_RETRIES = 5
RETRY_FIRST_WAIT = 0.5


def render_script(script: str, row: dict[str, Any], where: str) -> str:
    """The vendor's scripts are JSON with `"{{title}}"` inside quotes and `{{film_id}}` bare
    (quoted: JSON-escaped text; bare: a JSON literal, null for a missing value); a script that
    is not JSON (XML, text) is filled as the HTTP writer fills such bodies."""
    stripped = script.lstrip()
    if stripped[:1] in ("{", "["):
        escape = template.json_escape
    elif stripped.startswith("<"):
        escape = template.xml_escape
    else:
        escape = template.raw
    return template.render_row(script, row, escape, where)


class MessagingWriter:
    def __init__(
        self,
        broker_factory: Callable[[], Broker],
        connection: MessagingConnectionSettings,
        spec: WriterSpec,
        writer_guid: str,
    ) -> None:
        self.where = f"Job writer '{spec.job_key}'"
        connection.require_runnable()
        self.spec = spec
        self.guid = writer_guid
        self.position = WriterPosition(
            Path(django_settings.DATA_DIR) / "messaging_writers", writer_guid
        )
        self.settings = producer_settings(spec.target_definition, self.where)
        for name, destination in (
            ("Upsert", self.settings.upsert),
            ("Delete", self.settings.delete),
        ):
            kind = destination.system_type
            if kind and kind != connection.service:
                raise UnsupportedSystem(
                    f"{self.where}: Options.Messaging{name}Settings.SystemType is {kind} but "
                    f"the connection '{spec.connection}' is {connection.display}."
                )
        self.broker_factory = broker_factory
        self._broker: Broker | None = None

    @property
    def broker(self) -> Broker:
        if self._broker is None:
            self._broker = self.broker_factory()
        return self._broker

    # -- position --------------------------------------------------------------------------------
    def applied_position(self) -> str:
        return self.position.applied()

    # -- apply -----------------------------------------------------------------------------------
    def apply(
        self,
        header: Header,
        frames: Iterable[Frame],
        execution_id: str,
        hooks: ApplyHooks,
        *,
        recreate: bool = False,
    ) -> ApplyResult:
        state = self.position.start(
            execution_id,
            hooks,
            recreate=recreate,
            target="a messaging target",
            done="the messages already confirmed",
        )
        if state is None:
            return ApplyResult(applied=False)
        applied = state.applied
        resume = state.resume_at(execution_id)
        counts = {"upserts": 0, "deletes": 0}
        try:
            for index, frame in enumerate(frames):
                hooks.check_cancel()
                if index < resume[0]:
                    continue
                if frame.is_delete:
                    if not self.spec.propagate_delete:
                        continue
                    rows = [dict(zip(header.keys, key, strict=False)) for key in frame.rows]
                    destination, op = self.settings.delete, "deletes"
                else:
                    batch = hooks.transform(Batch(header.columns, frame.rows))
                    names = batch.names
                    rows = [dict(zip(names, row, strict=True)) for row in batch.rows]
                    destination, op = self.settings.upsert, "upserts"
                start = resume[1] if index == resume[0] else 0
                size = self.settings.batch_count
                for at in range(start, len(rows), size):
                    hooks.check_cancel()
                    chunk = rows[at : at + size]
                    outgoing = [
                        self._message(row, destination, op, f"{execution_id}:{index}:{at + n}")
                        for n, row in enumerate(chunk)
                    ]
                    self._publish(outgoing, hooks)
                    # Only now, the broker having confirmed every message of the chunk.
                    self.position.save(applied, execution_id, index, at + len(chunk))
                    counts[op] += len(chunk)
                    hooks.progress(counts["upserts"], counts["deletes"])
                    hooks.after_chunk(len(chunk))
                self.position.save(applied, execution_id, index + 1, 0)
            self.position.save(execution_id)
        finally:
            self.close()
        hooks.log(
            f"Messaging target: {counts['upserts']} upserts and {counts['deletes']} deletes "
            "published and confirmed by the broker."
        )
        return ApplyResult(applied=True, upserts=counts["upserts"], deletes=counts["deletes"])

    def _message(
        self, row: dict[str, Any], destination: Destination, op: str, position: str
    ) -> Outgoing:
        where = f"{self.where} {'UpsertScript' if op == 'upserts' else 'DeleteScript'}"
        if op == "upserts" and self.settings.passthrough:
            body = self._passthrough(row)
        elif destination.script:
            body = render_script(destination.script, row, where).encode()
        else:
            document = dict(row)
            if op == "deletes":
                document["_deleted"] = True
            body = json.dumps(document, default=template.as_text, ensure_ascii=False).encode()
        key = destination.key_separator.join(
            template.as_text(template.lookup(row, name, f"{self.where} FieldKey", name))
            for name in destination.field_key
        )
        headers = {
            name: template.render_row(value, row, template.raw, f"{self.where} Headers")
            for name, value in destination.headers
        }
        topic = destination.topic or (self.settings.upsert.topic if op == "deletes" else "")
        return Outgoing(body, f"{self.guid}:{position}", topic, key, headers)

    def _passthrough(self, row: dict[str, Any]) -> bytes:
        for name, value in row.items():
            if name.lower() == "_raw":
                return value if isinstance(value, bytes) else template.as_text(value).encode()
        raise UnsupportedSystem(
            f"{self.where}: IsPassthroughMessaging forwards the consumed message's content, but "
            f"the rows have no _raw column (columns: {', '.join(row)}); the consumer keeps it "
            'with MessagingContentColumn "_raw".'
        )

    def _publish(self, messages: list[Outgoing], hooks: ApplyHooks) -> None:
        wait = RETRY_FIRST_WAIT
        for attempt in range(PUBLISH_RETRIES + 1):
            try:
                self.broker.publish(messages)
                return
            except BrokerError as exc:
                if attempt == PUBLISH_RETRIES:
                    raise BrokerError(
                        f"{self.where}: {exc} ({len(messages)} message(s) not confirmed after "
                        f"{PUBLISH_RETRIES} retries; the next run sends them again)."
                    ) from exc
                hooks.log(f"{exc}; sending the {len(messages)} unconfirmed message(s) again.")
                self.close()
                time.sleep(wait)
                wait *= 2

    def close(self) -> None:
        if self._broker is not None:
            self._broker.close()
            self._broker = None

    def run_script(self, script: str) -> None:
        raise UnsupportedSystem(
            f"{self.where}: InitScript/FinalScript are SQL; a messaging target has nowhere to "
            "run them."
        )

    def streams_beside(self, reader: Reader) -> bool:
        # Published messages cannot be taken back: they go out once the change log is durable.
        return False
