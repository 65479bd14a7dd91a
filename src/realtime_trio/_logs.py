"""Logging set-up: one format, no secret in any line, and no caller ever waits on a write.

Redaction happens in the formatter, on the finished line (tracebacks included), so a careless
log call elsewhere cannot leak the API key or a full client secret.

Records go through a bounded queue to a writer thread: a slow or blocked stderr (a full pipe,
a stalled log shipper) must not stall the sideband's receive loop, which logs from the event
loop. When the queue is full, records are dropped and the next one written says how many.
"""

from __future__ import annotations

import atexit
import logging
import queue
import sys
import time
from logging.handlers import QueueHandler, QueueListener

from ._errors import redact

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_QUEUE_RECORDS = 10_000
FLUSH_WAIT_SECONDS = 1.0


class RedactingFormatter(logging.Formatter):
    """A formatter that masks the configured secrets and anything shaped like an OpenAI key."""

    def __init__(self, fmt: str, *, secrets: tuple[str, ...] = ()) -> None:
        super().__init__(fmt)
        self._secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), *self._secrets)


class DroppingQueueHandler(QueueHandler):
    """Hands records to a bounded queue without waiting; counts what did not fit."""

    def __init__(self, records: queue.Queue[logging.LogRecord]) -> None:
        super().__init__(records)
        self.records = records  # `queue`, typed as the queue.Queue it is
        self.dropped = 0
        self._reported = 0

    def enqueue(self, record: logging.LogRecord) -> None:
        if self.dropped != self._reported:
            note = logging.LogRecord(
                __name__,
                logging.WARNING,
                __file__,
                0,
                "log queue full: dropped %d records",
                (self.dropped - self._reported,),
                None,
            )
            try:
                self.queue.put_nowait(note)
                self._reported = self.dropped
            except queue.Full:
                pass
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1

    def flush(self) -> None:
        """Wait (briefly) until the writer thread has written every queued record (it marks
        each done once handled, so this covers the one being written too)."""
        deadline = time.monotonic() + FLUSH_WAIT_SECONDS
        records = self.records
        while records.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)


def configure_logging(level: str, *, secrets: tuple[str, ...] = ()) -> logging.Handler:
    """Send every log record to stderr, redacted, at *level*, through a bounded queue and a
    writer thread; returns the installed handler. The thread stops (after writing what is
    queued) when the process exits."""
    writer = logging.StreamHandler(sys.stderr)
    writer.setFormatter(RedactingFormatter(LOG_FORMAT, secrets=secrets))
    records: queue.Queue[logging.LogRecord] = queue.Queue(LOG_QUEUE_RECORDS)
    handler = DroppingQueueHandler(records)
    listener = QueueListener(records, writer, respect_handler_level=False)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    listener.start()
    atexit.register(listener.stop)
    return handler
