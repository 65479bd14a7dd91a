"""The project's own fixtures, over those of `realtime_trio.testing`.

`simulator`, `sim` and `start_server` come from `realtime_trio.testing`, which pytest loads as
a plugin (the package's `pytest11` entry point), as it does for plugin authors. What is here
is the server's own: settings kept out of the developer's environment, and a default server.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from realtime_trio._config import Settings
from realtime_trio._inbox import Inbox, MemoryInbox
from realtime_trio._leases import LeaseTable, MemoryLeaseTable
from realtime_trio._records import MemoryRecordTable, RecordTable
from realtime_trio._store_url import parse_store_url
from realtime_trio.testing import StartServer

# Settings the tests set themselves; cleared from the environment so a developer's shell
# cannot change what a test sees (`start_server` never reads it; `make_settings` and the
# tests of `Settings` itself do).
_SETTING_VARIABLES = [name.upper() for name in Settings.model_fields]


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _SETTING_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def make_settings(**overrides: Any) -> Settings:
    """Settings for a test server: loopback, port 0, no `.env`, plus *overrides*."""
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        # Plugins installed in the venv (the packaged example) only where a test asks for them.
        "plugin_entry_points": False,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
async def server(start_server: StartServer) -> str:
    return await start_server()


@pytest.fixture
async def client(server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server, timeout=30) as http:
        yield http


@pytest.fixture(scope="session")
def valkey_url() -> Iterator[str]:
    """One real Valkey server for the whole test session (tests key under their own prefix)."""
    from valkey_server import running_valkey

    with running_valkey() as url:
        yield url


@dataclass
class Tables:
    """One replica's view of the store: its lease and record tables on the same keys."""

    leases: LeaseTable
    records: RecordTable
    inbox: Inbox


@pytest.fixture(params=["memory", "valkey"])
def open_tables(request: pytest.FixtureRequest) -> Callable[[], Any]:
    """Opens the test's store, in memory or on the session's Valkey server: each call a new
    client (a replica) on the same keys."""
    if request.param == "memory":
        leases = MemoryLeaseTable()
        shared = Tables(leases, MemoryRecordTable(leases), MemoryInbox())

        @asynccontextmanager
        async def memory_tables() -> AsyncIterator[Tables]:
            yield shared

        return memory_tables
    url = parse_store_url(request.getfixturevalue("valkey_url"))
    prefix = f"test:{uuid.uuid4().hex}:"

    @asynccontextmanager
    async def valkey_tables() -> AsyncIterator[Tables]:
        from realtime_trio._valkey._client import open_valkey
        from realtime_trio._valkey._inbox import ValkeyInbox
        from realtime_trio._valkey._leases import ValkeyLeaseTable
        from realtime_trio._valkey._records import ValkeyRecordTable

        async with open_valkey(url) as client:
            yield Tables(
                ValkeyLeaseTable(client, prefix),
                ValkeyRecordTable(client, prefix),
                ValkeyInbox(client, prefix),
            )

    return valkey_tables


@pytest.fixture
def open_leases(open_tables: Callable[[], Any]) -> Callable[[], Any]:
    """`open_tables`, for its lease table alone."""

    @asynccontextmanager
    async def leases() -> AsyncIterator[LeaseTable]:
        async with open_tables() as tables:
            yield tables.leases

    return leases
