"""Structured logs: one JSON object per line in clusters, aligned plain text on a terminal.

`configure_logging` sets up the root logger once per process (uvicorn's loggers propagate to
it); a record logged while a request is answered carries its `request_id`; extra fields
passed with `logger.info("...", extra={"fields": {...}})` land as top-level
JSON keys, or as key=value pairs on the console.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal

from mastertrade.core.requestid import RequestIdFilter

LogFormat = Literal["json", "console"]

_RESERVED = set(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "fields",
    "color_message",
}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    found: dict[str, Any] = dict(fields) if isinstance(fields, dict) else {}
    for key, value in record.__dict__.items():
        if key not in _RESERVED and not key.startswith("_"):
            found[key] = value
    return found


class JsonFormatter(logging.Formatter):
    """A log record as one line of JSON with time, level, service, logger and message."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class ConsoleFormatter(logging.Formatter):
    """A log record as `time level logger: message key=value ...` for people."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S.%f")[:-3]
        extra = " ".join(f"{key}={value}" for key, value in _fields(record).items())
        line = f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if extra:
            line = f"{line} {extra}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def configure_logging(service: str, level: str = "INFO", fmt: LogFormat = "json") -> None:
    """Send every log record of the process to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service) if fmt == "json" else ConsoleFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    # aiormq logs every refused connection as an error; the supervisor already reports those.
    logging.getLogger("aiormq.connection").setLevel(logging.CRITICAL)
    logging.getLogger("aio_pika").setLevel(max(logging.getLevelName(level), logging.WARNING))
    # httpx logs every request it sends at INFO: the UI's poller and the gateway's proxy would
    # flood the log; their own request metrics and warnings say what matters.
    logging.getLogger("httpx").setLevel(max(logging.getLevelName(level), logging.WARNING))
    # websockets logs every frame at DEBUG: the executor's user-data subscription (its API key
    # and signature) and every report on it; a failed connection is the stream's own warning.
    logging.getLogger("websockets").setLevel(max(logging.getLevelName(level), logging.WARNING))
