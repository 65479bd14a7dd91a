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
import threading
import time
from logging.handlers import QueueHandler
from typing import TextIO

from ._errors import redact

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_QUEUE_RECORDS = 10_000
FLUSH_WAIT_SECONDS = 1.0


class RedactingFormatter(logging.Formatter):
    """A formatter that masks the configured secrets and anything shaped like an OpenAI key.

    Lines are `LOG_FORMAT` (the time to the millisecond, the level, the logger, the message),
    built without `logging.Formatter`'s general machinery: it formats on the writer thread,
    once per line, and the time's text is reused within a second.
    """

    def __init__(self, fmt: str = LOG_FORMAT, *, secrets: tuple[str, ...] = ()) -> None:
        super().__init__(fmt)
        self._secrets = secrets
        self._second = -1
        self._second_text = ""

    def format(self, record: logging.LogRecord) -> str:
        if self._fmt != LOG_FORMAT:  # another format: the general machinery
            return redact(super().format(record), *self._secrets)
        second = int(record.created)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        line = (
            f"{self._second_text},{int(record.msecs):03d} {record.levelname} {record.name}: "
            f"{record.getMessage()}"
        )
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line = f"{line}\n{record.exc_text}"
        if record.stack_info:
            line = f"{line}\n{self.formatStack(record.stack_info)}"
        return redact(line, *self._secrets)


class DroppingQueueHandler(QueueHandler):
    """Hands records to a bounded queue without waiting; counts what did not fit.

    Records go as they are (formatting happens on the writer thread, not on the event loop):
    what is logged is strings and numbers, which nothing changes after the call.
    """

    def __init__(self, records: queue.Queue[logging.LogRecord]) -> None:
        super().__init__(records)
        self.records = records  # `queue`, typed as the queue.Queue it is
        self.dropped = 0
        self._reported = 0

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record

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
        each done once written, so this covers the ones being written too)."""
        deadline = time.monotonic() + FLUSH_WAIT_SECONDS
        records = self.records
        while records.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)


class _Writer:
    """The writer thread: takes what is queued, formats it, and writes it in one go.

    A burst of records (one access line per request at a few hundred requests a second) is
    written with one `write` and one `flush`, not one each.
    """

    def __init__(
        self,
        records: queue.Queue[logging.LogRecord],
        stream: TextIO,
        formatter: logging.Formatter,
    ) -> None:
        self._records = records
        self._stream = stream
        self._formatter = formatter
        self._thread = threading.Thread(target=self._run, name="realtime-trio-logs", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Write what is queued, then end the thread (at exit)."""
        self._records.put(_STOP)
        self._thread.join(FLUSH_WAIT_SECONDS)

    def _run(self) -> None:
        records, formatter = self._records, self._formatter
        while True:
            batch = [records.get()]
            while len(batch) < WRITE_BATCH_RECORDS:
                try:
                    batch.append(records.get_nowait())
                except queue.Empty:
                    break
            lines = []
            for record in batch:
                if record is _STOP:
                    continue
                try:
                    lines.append(formatter.format(record) + "\n")
                except Exception:  # a record that cannot be formatted loses itself only
                    lines.append(f"unformattable log record from {record.name}\n")
            try:
                if lines:
                    self._stream.write("".join(lines))
                    self._stream.flush()
            except (OSError, ValueError):
                pass  # a closed or broken stderr: nowhere left to say so
            finally:
                for _ in batch:
                    records.task_done()
            if any(record is _STOP for record in batch):
                return


_STOP = logging.LogRecord("realtime_trio.logs", logging.INFO, __file__, 0, "stop", None, None)
WRITE_BATCH_RECORDS = 256


def configure_logging(level: str, *, secrets: tuple[str, ...] = ()) -> logging.Handler:
    """Send every log record to stderr, redacted, at *level*, through a bounded queue and a
    writer thread; returns the installed handler. The thread stops (after writing what is
    queued) when the process exits.

    Libraries' own per-request lines (httpx logs every request at INFO) are kept to warnings.
    """
    records: queue.Queue[logging.LogRecord] = queue.Queue(LOG_QUEUE_RECORDS)
    handler = DroppingQueueHandler(records)
    writer = _Writer(records, sys.stderr, RedactingFormatter(LOG_FORMAT, secrets=secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
    writer.start()
    atexit.register(writer.stop)
    return handler
