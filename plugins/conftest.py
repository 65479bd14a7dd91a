"""Fixtures for the plugins' tests: the server's own, plus `sim`.

The server's fixtures live in `tests/conftest.py`: `simulator`, `start_server(**settings)` and
the autouse `_isolated_settings` that keeps the developer's environment out of the settings.
That file is no package, and pytest already has a module called `conftest`, so it is loaded
here under a name of its own and its fixtures are re-exported. `tests/` also goes on `sys.path`,
so that `from sim_client import ...` works here as it does in the server's tests.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from realtime_trio.simulator import RunningSimulator

SERVER_TESTS = Path(__file__).resolve().parent.parent / "tests"

if str(SERVER_TESTS) not in sys.path:
    sys.path.insert(0, str(SERVER_TESTS))

from sim_client import SimControl  # noqa: E402 - importable once SERVER_TESTS is on the path


def _load(name: str, path: Path) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_server_fixtures = _load("realtime_trio_server_fixtures", SERVER_TESTS / "conftest.py")

_isolated_settings = _server_fixtures._isolated_settings
simulator = _server_fixtures.simulator
start_server = _server_fixtures.start_server


@pytest.fixture
async def sim(simulator: RunningSimulator) -> AsyncIterator[SimControl]:
    """The simulator's control API: drive a call (`sim.drive(call_id, "tool-call", ...)`) and
    read what the server sent it (`sim.client_events(call_id, "session.update")`)."""
    async with httpx.AsyncClient(timeout=30) as http:
        yield SimControl(simulator, http)
