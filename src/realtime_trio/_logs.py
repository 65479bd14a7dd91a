"""Logging set-up: text or JSON lines, no secret in any line, and no caller ever waits on a write.

Redaction happens in the formatter, on the finished line (tracebacks included) or on each value
of a JSON line, so a careless log call elsewhere cannot leak the API key or a full client secret.

JSON lines (`LOG_FORMAT=json`) also carry the ids bound where the line was logged (`request_id`,
`session_id`, `call_id`: `_log_context`), read on the caller's task; text lines show none, so
text mode costs what it did.

Records go through a bounded queue to a writer thread: a slow or blocked stderr (a full pipe,
a stalled log shipper) must not stall the sideband's receive loop, which logs from the event
loop. When the queue is full, records are dropped and the next one written says how many.
"""

from __future__ import annotations

import atexit
import json
import logging
import queue
import sys
import threading
import time
from logging.handlers import QueueHandler
from typing import TYPE_CHECKING, Any, TextIO

import orjson

from ._errors import redact
from ._log_context import log_fields

if TYPE_CHECKING:
    from ._config import LogFormat

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


# What every record has; anything else on a record came from `extra` or `_log_context`.
_RECORD_ATTRIBUTES = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)
_JSON_NATIVE = (str, int, float, bool, type(None))


class JSONFormatter(logging.Formatter):
    """One JSON object a line: `ts` (UTC, to the millisecond), `level`, `logger`, `message`,
    then the record's own fields (`request_id`, `session_id`, `call_id`; an access line's
    `method`, `path`, `status`, `duration_ms`), numbers as numbers, and `exception` or `stack`
    when there is one.

    Each string is redacted before it is encoded (a secret with a character JSON escapes would
    not be found in the encoded line); a field that is not a string, number, bool or null is
    written as its redacted `str`. Never raises: a record that cannot be formatted becomes a
    line saying so.
    """

    def __init__(self, *, secrets: tuple[str, ...] = ()) -> None:
        super().__init__()
        self._secrets = secrets
        self._second = -1
        self._second_text = ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        head = {
            "ts": f"{self._second_text}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
        }
        try:
            return self._encode(dict(head), record)
        except Exception as exc:
            head["message"] = f"unformattable log record ({type(exc).__name__})"
            return orjson.dumps(head).decode()

    def _encode(self, document: dict[str, Any], record: logging.LogRecord) -> str:
        secrets = self._secrets
        document["message"] = redact(record.getMessage(), *secrets)
        for key, value in record.__dict__.items():
            if key in _RECORD_ATTRIBUTES or key in document:
                continue
            if isinstance(value, str):
                value = redact(value, *secrets)
            elif not isinstance(value, _JSON_NATIVE):
                value = redact(str(value), *secrets)
            document[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            document["exception"] = redact(record.exc_text, *secrets)
        if record.stack_info:
            document["stack"] = redact(self.formatStack(record.stack_info), *secrets)
        try:
            return orjson.dumps(document).decode()
        except TypeError:  # an int beyond 64 bits, which orjson refuses
            return json.dumps(document, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


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


class ContextQueueHandler(DroppingQueueHandler):
    """A `DroppingQueueHandler` that first sets on each record the fields bound where it was
    logged (`log_fields`, read here, on the caller's task); a field the call passed in `extra`
    wins. For JSON lines only: text lines would not show them."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        attributes = record.__dict__
        for key, value in log_fields().items():
            attributes.setdefault(key, value)
        return record


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


def configure_logging(
    level: str, *, secrets: tuple[str, ...] = (), log_format: LogFormat = "text"
) -> logging.Handler:
    """Send every log record to stderr, redacted, at *level*, as text lines or (*log_format*
    `json`) one JSON object a line, through a bounded queue and a writer thread; returns the
    installed handler. The thread stops (after writing what is queued) when the process exits.

    Libraries' own per-request lines (httpx logs every request at INFO) are kept to warnings.
    In JSON, Python's warnings are logged too, so that they do not reach stderr as bare text.
    """
    records: queue.Queue[logging.LogRecord] = queue.Queue(LOG_QUEUE_RECORDS)
    handler: DroppingQueueHandler
    formatter: logging.Formatter
    if log_format == "json":
        handler = ContextQueueHandler(records)
        formatter = JSONFormatter(secrets=secrets)
    else:
        handler = DroppingQueueHandler(records)
        formatter = RedactingFormatter(LOG_FORMAT, secrets=secrets)
    writer = _Writer(records, sys.stderr, formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
    logging.captureWarnings(log_format == "json")
    writer.start()
    atexit.register(writer.stop)
    return handler
