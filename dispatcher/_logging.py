"""How `dispatcher serve` logs: text or JSON lines on stderr, with request fields.

Text (the default), for a terminal:

    2025-01-31 12:00:00,123 INFO dispatcher.access: POST /v1/chat/completions 200
    group=mini deployment=mock attempts=1 duration_ms=3.2 request_id=req_3f9c...

JSON (``--log-format json``), one object per line, for journald, Loki or any collector:

    {"time": "2025-01-31T12:00:00.123+00:00", "level": "INFO", "logger": "dispatcher.access",
     "message": "POST /v1/chat/completions 200", "group": "mini", ..., "request_id": "req_..."}

Fields passed as ``extra=`` and the id of the request being served (`_requestlog`) are
separate keys in JSON, and ``key=value`` after the message in text (see `TEXT_FIELDS`).
The JSON encoding is python-json-logger's (on msgspec), the field's usual formatter for
the standard library's logging.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Final, Literal, TextIO

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.msgspec import MsgspecFormatter

from ._requestlog import ACCESS_FIELDS, current_request

LogFormat = Literal["text", "json"]
LEVELS: Final = ("debug", "info", "warning", "error", "critical")
FORMATS: Final[tuple[LogFormat, ...]] = ("text", "json")
TEXT_FIELDS: Final = (*ACCESS_FIELDS, "error", "upstream_status", "duration_ms", "request_id")
"""The structured fields (``extra=``) a text line shows after its message, in this order
(JSON shows every field; an access line's method, path and status are its message)."""


class RequestContext(logging.Filter):
    """Adds the id of the request being served to every record logged while it is."""

    def filter(self, record: logging.LogRecord) -> bool:
        info = current_request()
        if info is not None and not hasattr(record, "request_id"):
            record.request_id = info.request_id
        return True


class TextFormatter(logging.Formatter):
    """The classic line, then `key=value` for each structured field the record has."""

    def __init__(self, *, with_pid: bool = False) -> None:
        # With --workers every process logs to the same stream: say which one.
        pid = "[%(process)d]" if with_pid else ""
        super().__init__(f"%(asctime)s %(levelname)s %(name)s{pid}: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        extra = [f"{name}={getattr(record, name)}" for name in TEXT_FIELDS if hasattr(record, name)]
        return f"{line} {' '.join(extra)}" if extra else line


class JsonFormatter(MsgspecFormatter):
    """One JSON object per line: time (ISO 8601, UTC, ms), level, logger, message, fields."""

    def __init__(self) -> None:
        super().__init__(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            # uvicorn passes a colored copy of some messages; taskName is Python 3.12's.
            reserved_attrs=[*RESERVED_ATTRS, "color_message", "taskName"],
        )

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


def configure_logging(
    level: str,
    log_format: LogFormat,
    *,
    access_log: bool,
    stream: TextIO | None = None,
    with_pid: bool = False,
) -> None:
    """Log records at `level` and above to `stream` (stderr) in `log_format`; the access log
    (one INFO line per request, logger ``dispatcher.access``) only with `access_log`."""
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else TextFormatter(with_pid=with_pid)
    )
    handler.addFilter(RequestContext())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # httpx logs every request at INFO: far too much for the hot path of a gateway.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # The access log is its own switch, whatever the level of the rest.
    access = logging.getLogger("dispatcher.access")
    access.setLevel(logging.INFO if access_log else logging.CRITICAL + 1)
