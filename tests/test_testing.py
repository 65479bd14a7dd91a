"""`realtime_trio.testing`, the fixtures plugin authors get: loaded by pytest, cheap to import,
settings from the test alone, plugins as objects, and a live call that calls tools."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from pydantic import ValidationError

import realtime_trio.testing
from realtime_trio import Tool, ToolContext, ToolResult, hookimpl
from realtime_trio.testing import SimControl, StartServer, open_call


def test_pytest_loads_it_through_its_entry_point(pytestconfig: pytest.Config) -> None:
    (entry_point,) = [e for e in entry_points(group="pytest11") if e.name == "realtime_trio"]

    assert entry_point.value == "realtime_trio.testing"
    assert pytestconfig.pluginmanager.get_plugin("realtime_trio") is realtime_trio.testing


def test_importing_it_loads_neither_the_simulator_nor_the_openai_sdk() -> None:
    """Pytest imports it wherever the package is installed, with or without the extra."""
    probe = textwrap.dedent(
        """
        import sys
        import realtime_trio.testing
        heavy = ("openai", "realtime_trio.simulator", "realtime_trio._demo", "pytest_trio")
        print(sorted(m for m in sys.modules if m.split(".")[0] == "openai" or m in heavy))
        """
    )

    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )

    assert result.stdout.strip() == "[]"


class Recorder:
    """A plugin whose tools show what their handler was given."""

    name = "recorder"

    def __init__(self) -> None:
        self.call_ids: list[str] = []

    async def whoami(self, context: ToolContext, arguments: Any) -> dict[str, Any]:
        self.call_ids.append(context.call_id)
        return {"ok": True, "session": context.session_id, "call": context.call_id}

    async def hush(self, context: ToolContext, arguments: Any) -> ToolResult:
        return ToolResult({"ok": True}, create_response=False)

    async def stall(self, context: ToolContext, arguments: Any) -> dict[str, Any]:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    @hookimpl
    def rt_register_tools(self) -> list[Tool]:
        return [
            Tool("whoami", "Says which call it answers.", self.whoami),
            Tool("hush", "Answers without a response.", self.hush),
            Tool("stall", "Never answers in time.", self.stall, timeout_seconds=30),
        ]


async def test_call_tool_returns_what_crossed_the_wire(
    start_server: StartServer, sim: SimControl
) -> None:
    recorder = Recorder()
    url = await start_server(plugins=[recorder])
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        call = await open_call(client, sim)

        answered = await call.call_tool("whoami")
        hushed = await call.call_tool("hush", timeout_seconds=0.5)

        outputs = await call.client_events("conversation.item.create")
    assert answered.output == {"ok": True, "session": call.session_id, "call": answered.call_id}
    assert recorder.call_ids == [answered.call_id]
    assert [(o["item"]["call_id"], o["item"]["output"]) for o in outputs] == [
        (answered.call_id, answered.raw_output),
        (hushed.call_id, hushed.raw_output),
    ]
    assert json.loads(answered.raw_output) == answered.output
    assert (answered.response_created, hushed.response_created) == (True, False)
    assert hushed.output == {"ok": True}


async def test_call_tool_says_when_no_output_came(
    start_server: StartServer, sim: SimControl
) -> None:
    url = await start_server(plugins=[Recorder()])
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        call = await open_call(client, sim)

        with pytest.raises(AssertionError, match="no function_call_output for the call to 'stall'"):
            await call.call_tool("stall", timeout_seconds=0.3)


async def test_open_call_says_when_the_sideband_did_not_connect(
    start_server: StartServer, sim: SimControl
) -> None:
    url = await start_server(sideband_reconnect_attempts=0, sideband_attach_wait_seconds=1)
    await sim.arm_fault("/v1/realtime", status=500, times=5)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        with pytest.raises(AssertionError, match="did not connect"):
            await open_call(client, sim)


async def test_start_server_reads_neither_the_environment_nor_a_dotenv_file(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SERVER_API_KEYS", "from-the-shell")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9")
    (tmp_path / ".env").write_text("MAX_SESSIONS=1\nSERVER_API_KEYS=from-a-dotenv-file\n")
    monkeypatch.chdir(tmp_path)

    url = await start_server()

    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for _ in range(2):
            response = await client.post("/session", json={})
            assert response.status_code == 200, response.text


async def test_a_misspelt_setting_is_an_error(start_server: StartServer) -> None:
    with pytest.raises(ValidationError, match="tool_timout_seconds"):
        await start_server(tool_timout_seconds=2)


async def test_plugins_are_modules_or_instances_named_after_themselves(
    start_server: StartServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pinger.py").write_text(
        textwrap.dedent(
            """
            from realtime_trio import Tool, hookimpl

            async def ping(context, arguments):
                return {"ok": True}

            @hookimpl
            def rt_register_tools():
                return [Tool("ping", "Answers.", ping)]
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "pinger", raising=False)
    module = importlib.import_module("pinger")

    url = await start_server(plugins=[module, Recorder()])

    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        tools = (await client.get("/tools")).json()["tools"]
    assert [(tool["name"], tool["plugin"]) for tool in tools] == [
        ("extract_profile", "builtin"),
        ("ping", "pinger"),
        ("whoami", "recorder"),
        ("hush", "recorder"),
        ("stall", "recorder"),
    ]


async def test_a_lone_module_for_plugins_is_refused(start_server: StartServer) -> None:
    with pytest.raises(TypeError, match="takes a list of plugin objects"):
        await start_server(plugins=realtime_trio.testing)
