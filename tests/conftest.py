"""Shared fixtures: the simulator and the server on loopback ports, talking over real sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

import httpx
import pytest
import trio

from realtime_trio._config import Settings
from realtime_trio.serve import serve
from realtime_trio.simulator import DEFAULT_API_KEY, RunningSimulator, run_simulator
from sim_client import SimControl

StartServer = Callable[..., Awaitable[str]]

# Settings the tests set themselves; cleared from the environment so a developer's shell
# cannot change what a test sees.
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
async def simulator(nursery: trio.Nursery) -> RunningSimulator:
    return await nursery.start(run_simulator)


@pytest.fixture
async def sim(simulator: RunningSimulator) -> AsyncIterator[SimControl]:
    """The simulator's control API and the app's calls to it, over HTTP."""
    async with httpx.AsyncClient(timeout=30) as http:
        yield SimControl(simulator, http)


@pytest.fixture
async def start_server(
    nursery: trio.Nursery, simulator: RunningSimulator
) -> AsyncIterator[StartServer]:
    """Start a server wired to the simulator; keyword arguments override its settings.

    At teardown each server is shut down the way a signal does it (gracefully), so sidebands
    say goodbye with a close frame instead of being cut off by the nursery's cancellation.
    """
    stop = trio.Event()
    running: list[trio.Event] = []

    async def run(
        settings: Settings, plugins: Any, *, task_status: trio.TaskStatus[list[str]]
    ) -> None:
        done = trio.Event()
        running.append(done)
        try:
            await serve(
                settings, plugins=plugins, shutdown_trigger=stop.wait, task_status=task_status
            )
        finally:
            done.set()

    async def start(*, plugins: Any = None, **overrides: Any) -> str:
        """*plugins*: a `PluginRegistry` to use instead of loading them from the settings."""
        values = {
            "openai_api_key": DEFAULT_API_KEY,
            "openai_base_url": simulator.base_url,
            **overrides,
        }
        binds: list[str] = await nursery.start(partial(run, make_settings(**values), plugins))
        return binds[0]

    yield start
    stop.set()
    with trio.move_on_after(10):
        for done in running:
            await done.wait()


@pytest.fixture
async def server(start_server: StartServer) -> str:
    return await start_server()


@pytest.fixture
async def client(server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server, timeout=30) as http:
        yield http
