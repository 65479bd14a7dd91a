"""Logging set-up: one format, and no secret ever reaches a log line.

Redaction happens in the formatter, on the finished line (tracebacks included), so a careless
log call elsewhere cannot leak the API key or a full client secret.
"""

from __future__ import annotations

import logging
import sys

from .errors import redact


class RedactingFormatter(logging.Formatter):
    """A formatter that masks the configured secrets and anything shaped like an OpenAI key."""

    def __init__(self, fmt: str, *, secrets: tuple[str, ...] = ()) -> None:
        super().__init__(fmt)
        self._secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), *self._secrets)


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str, *, secrets: tuple[str, ...] = ()) -> logging.Handler:
    """Send every log record to stderr, redacted, at *level*; returns the installed handler."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(LOG_FORMAT, secrets=secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
