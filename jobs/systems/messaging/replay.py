"""Replaying a consumer's dead letters (`deadletter/<JobKey>.messages.jsonl`) once the reason is
fixed — the job's definition changed, or a line's `content` corrected by hand: each message is
published again to the queue, topic, subject or stream its consumer reads, and the consumer
takes it like any other.

A replayed message carries a new id, `<original id>#replay-<when it was dead-lettered>`, with
the original in the `x-replay-of` header: the consumer remembers the original id as handled, so
the same id would be skipped, and a replay interrupted after publishing and run again sends the
same ids (the consumer skips the copies). RabbitMQ messages go to the consumer's queue through
the default exchange (no other queue bound to the connection's exchange gets them); on MQTT,
NATS and Redis the topic, subject or stream is shared with whoever else reads it, who receives
the replay too (docs/messaging.md).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

from jobs.connections import resolve
from jobs.models import ConnectionType, Job, JobKind
from jobs.sync.consume import DEAD_LETTER_SUFFIX
from jobs.sync.plan import reader_spec
from jobs.sync.spec import SpecError
from jobs.systems import deadletters
from jobs.systems.deadletters import DeadLetterError, ReplayResult
from jobs.systems.messaging import broker_for, settings_of
from jobs.systems.messaging.brokers import Broker, BrokerError, Outgoing
from jobs.systems.messaging.settings import consumer_settings

REPLAY_MARK = "#replay-"
CHUNK = 500  # messages published, then confirmed, at a time


def is_message_file(path: Path) -> bool:
    return path.name.endswith(DEAD_LETTER_SUFFIX)


def replay_id(entry: dict[str, Any]) -> str:
    original = str(entry.get("message_id") or "")
    base = (
        original.split(REPLAY_MARK)[0]
        or hashlib.sha256(str(entry.get("content", "")).encode()).hexdigest()[:32]
    )
    return f"{base}{REPLAY_MARK}{entry.get('at', '')}"


def _content(entry: dict[str, Any], where: str) -> bytes:
    content = entry["content"]
    if not isinstance(content, str):
        raise DeadLetterError(f"{where}: content is not text.")
    if entry.get("content_encoding") == "base64":
        try:
            return base64.b64decode(content, validate=True)
        except binascii.Error as exc:
            raise DeadLetterError(f"{where}: content is not base64: {exc}") from None
    return content.encode("utf-8")


class _Destination:
    """Where a consumer job's messages come from, and a broker that publishes there."""

    def __init__(self, job_key: str) -> None:
        job = (
            Job.objects.filter(job_key=job_key, kind=JobKind.READER)
            .order_by("is_dynamic", "-created_on")
            .first()
        )
        if job is None:
            raise ValueError(f"No job reader has the key '{job_key}'.")
        spec = reader_spec(job)
        where = f"Job reader '{job_key}'"
        connection = resolve(spec.connection, kind=ConnectionType.MESSAGING)
        settings = settings_of(connection)
        options = consumer_settings(spec.source_settings, f"{where}: MessagingOptions")
        self.service = settings.service
        if settings.service == "rabbitmq":
            # Straight to the consumer's queue: the default exchange routes by queue name.
            settings = replace(settings, exchange="", routing_key="")
            self.default = options.queue_override or settings.queue
        else:
            self.default = options.queue_override or {
                "mqtt": settings.topic,
                "nats": settings.subject,
                "redis": settings.stream,
            }.get(settings.service, "")
        # A client id of its own: the consumer's MQTT session must not be taken over.
        self.broker: Broker = broker_for(settings, group=f"gw_replay_{job.pk}")

    def of(self, entry: dict[str, Any]) -> str:
        if self.service == "rabbitmq":
            return self.default
        subject = str(entry.get("subject") or self.default)
        if self.service == "mqtt" and any(c in subject for c in "#+"):
            raise ValueError(f"the topic filter {subject} names no topic to publish to")
        return subject


def replay_messages(path: Path) -> ReplayResult:
    """Publish every entry again, waiting for the broker's confirmation; keep those that fail,
    with the reason."""
    result = ReplayResult()
    with deadletters.locked(path):
        found = deadletters.entries(path)
        kept: list[dict[str, Any]] = []
        places: dict[str, _Destination | str] = {}
        pending: dict[str, list[tuple[dict[str, Any], Outgoing]]] = {}
        for number, entry in enumerate(found, 1):
            where = f"{path.name} entry {number}"
            try:
                job_key = str(entry["job"])
                body = _content(entry, where)
            except KeyError as exc:
                raise DeadLetterError(
                    f"{where} is not a consumer's dead letter: no {exc}"
                ) from None
            if job_key not in places:
                try:
                    places[job_key] = _Destination(job_key)
                except (ValueError, SpecError) as exc:
                    places[job_key] = str(exc)
            place = places[job_key]
            try:
                if isinstance(place, str):
                    raise ValueError(place)
                message_id = replay_id(entry)
                headers = {str(k): str(v) for k, v in (entry.get("headers") or {}).items()}
                headers["x-replay-of"] = str(entry.get("message_id") or "")
                outgoing = Outgoing(body, message_id, place.of(entry), headers=headers)
            except ValueError as exc:
                kept.append({**entry, "replay_error": str(exc)})
                result.still_failing += 1
                continue
            pending.setdefault(job_key, []).append((entry, outgoing))
        try:
            for job_key, messages in pending.items():
                place = places[job_key]
                assert isinstance(place, _Destination)
                for at in range(0, len(messages), CHUNK):
                    chunk = messages[at : at + CHUNK]
                    try:
                        place.broker.publish([outgoing for _, outgoing in chunk])
                    except (BrokerError, ValueError) as exc:
                        kept.extend({**entry, "replay_error": str(exc)} for entry, _ in chunk)
                        result.still_failing += len(chunk)
                        continue
                    result.delivered += len(chunk)
                    result.rows_delivered += len(chunk)
        finally:
            for place in places.values():
                if isinstance(place, _Destination):
                    place.broker.close()
        deadletters.keep_only(path, kept)
    return result
