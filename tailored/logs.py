"""A JSON log formatter for the suite's structured log lines (docs/operations.md, "Logs").

One JSON object per line: ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, the
line's ``event`` name and fields when it has them (``extra={"event": "drain.batch_done",
"partition": 3, ...}``), and for an exception its type and where it was raised.

The exception's *message* is left out by default (``messages=False``): a database or Redis
error may quote the data it failed on (a key, a value), and the suite's own log lines never
carry a property value, a visitor key, an address or an email. The stack's frames name files,
lines and functions only (no local variables).
"""

import json
import logging
import traceback
from datetime import UTC, datetime

# Attributes every LogRecord has: anything else on a record came from ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
}


class JsonFormatter(logging.Formatter):
    """``logging.Formatter`` writing one JSON object per record. Options (``LOGGING``'s
    formatter entry): ``messages`` (bool, default False) to include exception messages."""

    def __init__(self, *args, messages: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.messages = messages

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD and not name.startswith("_"):
                entry[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, exc, tb = record.exc_info
            entry["exc_type"] = exc_type.__name__
            entry["stack"] = [
                f"{frame.filename}:{frame.lineno} in {frame.name}"
                for frame in traceback.extract_tb(tb)
            ]
            if self.messages:
                entry["exc_message"] = str(exc)
        return json.dumps(entry, default=str, ensure_ascii=False)
