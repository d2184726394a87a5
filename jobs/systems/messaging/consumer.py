"""A messaging source: messages → rows, for the consumer daemon (jobs.sync.consume).

`MessageProcessing` 0 keeps each message whole in `MessagingContentColumn` (`_raw`); 1 parses
it as JSON and 2 as XML, `RootPath` selecting the rows as in HTTP readers (docs/http.md).
The columns and their types come from `MessagingSampleMsg` when given (else from the first
messages) and stay fixed: a message that cannot fill them goes to the dead letters with the
reason. Broker metadata and headers are added as columns on request.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from operator import itemgetter
from typing import Any

from jobs.sync.spec import ReaderSpec
from jobs.systems.base import Delivery, Pushdown, Since, UnsupportedSystem
from jobs.systems.batch import Batch, Column
from jobs.systems.http.documents import DocumentError, document_rows
from jobs.systems.messaging.brokers import Broker, Message
from jobs.systems.messaging.settings import JSON, METADATA_FIELDS, RAW, ConsumerSettings
from jobs.systems.values import AS_IS, Mismatch, coerce, type_of


class MessageError(ValueError):
    """A message the consumer cannot turn into rows (it is dead-lettered with this reason)."""


class MessagingReader:
    """One consumer definition on one broker connection."""

    pushdown = Pushdown()

    def __init__(
        self, broker: Broker, settings: ConsumerSettings, spec: ReaderSpec, where: str
    ) -> None:
        self.broker = broker
        self.settings = settings
        self.spec = spec
        self.where = where
        self.columns: list[Column] = []
        self._names: list[str] = []
        self.batch_count = settings.batch_count
        self.flush_seconds = settings.flush_seconds
        self._polled: list[Message] = []
        self._extra = self._extra_names()
        if settings.sample:
            try:
                sample = self._document(settings.sample.encode())
            except MessageError as exc:
                raise UnsupportedSystem(f"{where}: MessagingSampleMsg: {exc}") from None
            self._fix_columns(sample)

    # -- columns -----------------------------------------------------------------------------
    def _extra_names(self) -> list[str]:
        names: list[str] = []
        if self.settings.include_metadata:
            names.extend(self.settings.metadata_fields or METADATA_FIELDS)
        if self.settings.include_headers:
            names.extend(self.settings.header_fields or ["_headers"])
        return names

    def _document(self, content: bytes) -> list[dict[str, Any]]:
        """The rows of one message's content (metadata not yet added)."""
        s = self.settings
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MessageError(f"the message is not UTF-8 text ({exc.reason})") from None
        if s.processing == RAW:
            return [{s.content_column: text}]
        if s.processing == JSON and s.root_path in ("", "$"):
            # The usual message, one flat JSON object: the parsed object is the row.
            try:
                value = json.loads(text)
            except ValueError as exc:
                raise MessageError(f"not JSON as MessageProcessing 1 expects: {exc}") from None
            if isinstance(value, dict) and not any(
                isinstance(v, dict | list) for v in value.values()
            ):
                if s.content_column:
                    value[s.content_column] = text
                return [value]
        try:
            rows = document_rows(
                content,
                is_json=s.processing == JSON,
                root_path=s.root_path or ("$" if s.processing == JSON else "/*"),
                raw_column="",
                where="the message",
            )
        except (DocumentError, ValueError) as exc:
            kind = "JSON" if s.processing == JSON else "XML"
            raise MessageError(
                f"not {kind} as MessageProcessing {s.processing} expects: {exc}"
            ) from None
        if s.content_column:
            for row in rows:
                row[s.content_column] = text
        return rows

    def _fix_columns(self, rows: list[dict[str, Any]]) -> None:
        order: dict[str, str] = {}
        for row in rows:
            for name in row:
                order.setdefault(name.lower(), name)
        wanted = self.settings.columns
        if wanted:
            content = self.settings.content_column
            names = [order.get(n.lower(), n) for n in wanted]
            if content and content.lower() not in {n.lower() for n in names}:
                names.append(content)
        else:
            names = list(order.values())
        self.columns = [Column(n, type_of(r.get(n) for r in rows)) for n in names] + [
            Column(n, "boolean" if n == "_redelivered" else "string") for n in self._extra
        ]
        self._names = [c.name for c in self.columns]

    def _metadata(self, message: Message) -> dict[str, Any]:
        values: dict[str, Any] = {
            "_message_id": message.message_id,
            "_subject": message.subject,
            "_timestamp": message.timestamp,
            "_redelivered": message.redelivered,
        }
        if self.settings.header_fields:
            values.update({n: message.headers.get(n) for n in self.settings.header_fields})
        else:
            values["_headers"] = json.dumps(message.headers, ensure_ascii=False)
        return values

    def _rows(self, message: Message) -> list[tuple]:
        return self._typed(self._document(message.body), message)

    def _typed(self, rows: list[dict[str, Any]], message: Message) -> list[tuple]:
        if not self.columns:
            self._fix_columns(rows)
        metadata = self._metadata(message) if self._extra else {}
        out = []
        try:
            for row in rows:
                by_lower = {k.lower(): v for k, v in row.items()}
                by_lower.update({k.lower(): v for k, v in metadata.items()})
                out.append(
                    tuple(
                        coerce(by_lower.get(c.name.lower()), c.type, c.name, parse_text=True)
                        for c in self.columns
                    )
                )
        except Mismatch as exc:
            raise MessageError(
                f"column {exc.name!r} is {exc.kind} but the message has {exc.value!r}"
            ) from None
        return out

    def _fast(self, messages: list[Message]) -> list[Delivery] | None:
        """The usual batch: flat JSON objects with exactly the columns, values of their types.
        Checked column by column at C speed; None sends the batch the per-message way."""
        s = self.settings
        if s.processing != JSON or s.root_path not in ("", "$") or self._extra:
            return None
        if s.content_column or not self.columns:
            return None
        loads = json.loads
        try:
            documents = [loads(m.body) for m in messages]
        except ValueError:
            return None
        width = len(self._names)
        if not all(type(d) is dict and len(d) == width for d in documents):
            return None
        getter = itemgetter(*self._names)
        try:
            values = list(map(getter, documents))
        except KeyError:
            return None
        if width == 1:
            values = [(v,) for v in values]
        for column, column_values in zip(self.columns, zip(*values, strict=True), strict=True):
            if not AS_IS[column.type].issuperset(map(type, column_values)):
                return None  # also catches nested objects and lists
        return [
            Delivery(m.message_id, [row], "", m.body, m.subject, m.headers)
            for m, row in zip(messages, values, strict=True)
        ]

    # -- the MessageSource interface ----------------------------------------------------------
    def poll(self, max_count: int, timeout: float) -> list[Delivery]:
        messages = self.broker.receive(max_count, timeout)
        self._polled.extend(messages)
        if messages and (fast := self._fast(messages)) is not None:
            return fast
        deliveries = []
        for message in messages:
            try:
                rows, error = self._rows(message), ""
            except MessageError as exc:
                rows, error = [], str(exc)
            deliveries.append(
                Delivery(
                    message.message_id,
                    rows,
                    error,
                    message.body,
                    message.subject,
                    message.headers,
                )
            )
        return deliveries

    def ack(self) -> None:
        polled, self._polled = self._polled, []
        self.broker.ack(polled)

    def close(self) -> None:
        self._polled = []
        self.broker.close()

    # -- the Reader interface (a test run: one message, never acknowledged) -------------------
    def batches(
        self, *, batch_size: int, limit: int | None = None, since: Since | None = None
    ) -> Iterator[Batch]:
        try:
            deliveries = self.poll(limit or batch_size, self.settings.flush_seconds)
            rows = [row for d in deliveries for row in d.rows]
            for delivery in deliveries:
                if delivery.error:
                    raise MessageError(f"{self.where}: {delivery.error}")
            yield Batch(self.columns or [Column(self.settings.content_column or "_raw")], rows)
        finally:
            self.close()  # unacknowledged: the broker delivers them again to the daemon

    def deleted_keys(self, *, batch_size: int, since: Since | None = None) -> Iterator[Batch]:
        raise UnsupportedSystem(f"{self.where}: a message consumer has no DeletedRecordsSQL.")

    def estimate_rows(self) -> int | None:
        return None  # a queue's backlog is no estimate of what a daemon will read

    def commit(self) -> None:
        """Nothing: a consumer's position is its acknowledgements."""

    def report_to(self, log: Callable[[str], None]) -> None:
        """Nothing to add: the consumer daemon logs its own summary lines."""
