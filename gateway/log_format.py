"""GATEWAY_LOG_FORMAT=json: one JSON object per log line, for log shippers.

Members: time (UTC, milliseconds), level, logger, message, process, thread, and for access
lines the request's fields under "access"; an exception's traceback under "exception".
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, tz=UTC)
        entry: dict[str, object] = {
            "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
            "thread": record.threadName,
        }
        access = getattr(record, "access", None)
        if isinstance(access, dict):
            entry["access"] = access
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)
