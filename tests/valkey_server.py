"""A real `valkey-server` for the tests, one per test session (each test keys under its own
prefix): the package's embedded server (`realtime_trio._valkey._embedded`), which `demo
--replicas` runs too. `ValkeyServer.kill()` and `.start()` stop and start it again on the same
port and data, as an operator restarts a store."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from realtime_trio._valkey._embedded import EmbeddedValkey as ValkeyServer
from realtime_trio._valkey._embedded import embedded_valkey as valkey_process

__all__ = ["ValkeyServer", "running_valkey", "valkey_process"]


@contextmanager
def running_valkey(*, appendonly: bool = False) -> Iterator[str]:
    """A fresh server until the block ends; its `valkey://` URL."""
    with valkey_process(appendonly=appendonly) as server:
        yield server.url
