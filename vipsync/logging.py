"""Structured logs: one JSON object per line on stderr when not on a terminal.

Log calls pass identifiers (store key, order id, counts) in ``extra``; they never carry
e-mails, names, addresses or tokens.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

__all__ = ["JsonFormatter", "configure_logging"]

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                body[key] = value
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        return json.dumps(body, default=str)


_configured = False


def configure_logging(level: str | None = None) -> None:
    """Configure the root logger once per process (level from VIPSYNC_LOG_LEVEL)."""
    global _configured
    if level is None:
        import os

        level = os.environ.get("VIPSYNC_LOG_LEVEL", "WARNING").upper()
    root = logging.getLogger()
    if not _configured:
        handler = logging.StreamHandler(sys.stderr)
        if sys.stderr.isatty():
            handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        else:
            handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
        _configured = True
    root.setLevel(level)
