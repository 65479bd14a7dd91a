"""MCP servers as tool sources: real MCP servers (stdio, started by the server under test; and
streamable HTTP, started here) whose tools are offered on every call and answered through the
same dispatcher as plugin tools."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from mcp_servers import HttpMcpServer, McpLog, stdio_entry, write_servers_file
from realtime_trio._mcp._config import McpConfigError, call_name, load_mcp_servers
from realtime_trio.testing import StartServer, open_call
from sim_client import SimControl, closed_port, wait_until

ORDER_PATTERN = "^[A-Z]{2}-[0-9]{4}$"


@pytest.fixture
def log(tmp_path: Path) -> McpLog:
    return McpLog(tmp_path / "mcp.log")


async def tools_of(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/tools")
    assert response.status_code == 200, response.text
    return response.json()


async def start_with_stdio(
    start_server: StartServer,
    tmp_path: Path,
    log: McpLog,
    entry: dict[str, Any] | None = None,
    **settings: Any,
) -> str:
    """A server whose one MCP server, `shop`, is the test server over stdio (*entry*: more
    keys of its entry; *settings*: the server's)."""
    servers = write_servers_file(tmp_path, {"shop": stdio_entry(log, **(entry or {}))})
    return await start_server(mcp_servers_file=servers, **settings)


def offered_tools(update: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {tool["name"]: tool for tool in update["session"].get("tools", [])}


# -- offered ------------------------------------------------------------------------------------


async def test_a_stdio_servers_tools_are_listed_and_offered_on_a_live_call(
    start_server: StartServer, sim: SimControl, tmp_path: Path, log: McpLog
) -> None:
    url = await start_with_stdio(start_server, tmp_path, log)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        listed = await tools_of(client)
        call = await open_call(client, sim)
        [update, *_] = await call.client_events("session.update")

    tools = {tool["name"]: tool for tool in listed["tools"]}
    lookup = tools["shop__lookup_order"]
    assert lookup["source"] == "mcp:shop"
    assert lookup["plugin"] is None
    assert lookup["parameters"]["properties"]["order_id"]["pattern"] == ORDER_PATTERN
    assert lookup["parameters"]["required"] == ["order_id"]
    assert tools["extract_profile"]["source"] == "plugin"
    shop = listed["mcpServers"]["shop"]
    assert shop["state"] == "connected"
    assert shop["transport"] == "stdio"
    assert "shop__lookup_order" in shop["tools"]
    # The live call is offered the same tools, with the server's schemas as they are.
    on_call = offered_tools(update)
    assert on_call["shop__lookup_order"] == {
        "type": "function",
        "name": "shop__lookup_order",
        "description": lookup["description"],
        "parameters": lookup["parameters"],
    }
    assert {"shop__echo_text", "shop__fail", "extract_profile"} <= set(on_call)
    assert len(log.entries("started")) == 1  # one long-lived client, not one per call


async def test_a_call_returns_the_structured_result_and_text_when_there_is_none(
    start_server: StartServer, sim: SimControl, tmp_path: Path, log: McpLog
) -> None:
    url = await start_with_stdio(start_server, tmp_path, log)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        call = await open_call(client, sim)
        order = await call.call_tool("shop__lookup_order", {"order_id": "AB-1234"})
        echo = await call.call_tool("shop__echo_text", {"text": "hi"})
        picture = await call.call_tool("shop__picture")

    assert order.output == {"orderId": "AB-1234", "status": "shipped", "items": 2}
    assert order.response_created
    assert echo.output == "echo: hi"
    # An image is described, never dropped without a word.
    assert re.fullmatch(r"\[image: image/png, \d+ bytes, not shown\]\na red dot", picture.output)
    assert [c["arguments"] for c in log.calls("lookup_order")] == [{"order_id": "AB-1234"}]
    assert len(log.entries("started")) == 1


async def test_an_is_error_result_is_a_tool_error_output(
    start_server: StartServer, sim: SimControl, tmp_path: Path, log: McpLog
) -> None:
    url = await start_with_stdio(start_server, tmp_path, log)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        call = await open_call(client, sim)
        failed = await call.call_tool("shop__fail", {"message": "The warehouse is closed."})

    assert failed.output == {
        "ok": False,
        "reason": "tool_error",
        "message": "The warehouse is closed.",
    }


async def test_arguments_that_break_the_schema_never_reach_the_server(
    start_server: StartServer, sim: SimControl, tmp_path: Path, log: McpLog
) -> None:
    url = await start_with_stdio(start_server, tmp_path, log)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        call = await open_call(client, sim)
        bad_pattern = await call.call_tool("shop__lookup_order", {"order_id": "12"})
        missing = await call.call_tool("shop__lookup_order", {})
        not_json = await call.call_tool("shop__lookup_order", "{not json")
        good = await call.call_tool("shop__lookup_order", {"order_id": "ZZ-0001"})

    assert bad_pattern.output["reason"] == "invalid_arguments"
    assert bad_pattern.output["errors"][0]["field"] == "order_id"
    assert "does not match" in bad_pattern.output["errors"][0]["problem"]
    assert missing.output["reason"] == "invalid_arguments"
    assert "'order_id' is a required property" in missing.output["message"]
    assert not_json.output["reason"] == "invalid_arguments"
    assert good.output["orderId"] == "ZZ-0001"
    assert [c["arguments"] for c in log.calls()] == [{"order_id": "ZZ-0001"}]


async def test_allowed_tools_limits_what_is_offered(
    start_server: StartServer, sim: SimControl, tmp_path: Path, log: McpLog
) -> None:
    url = await start_with_stdio(start_server, tmp_path, log, {"allowedTools": ["echo_text"]})
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        listed = await tools_of(client)
        call = await open_call(client, sim)
        refused = await call.call_tool("shop__crash")

    names = [tool["name"] for tool in listed["tools"]]
    assert [n for n in names if n.startswith("shop__")] == ["shop__echo_text"]
    assert refused.output["reason"] == "unknown_tool"
    assert log.calls() == []


# -- failures -----------------------------------------------------------------------------------


async def test_a_stdio_server_that_dies_mid_call_is_restarted_and_the_call_answered_unavailable(
    start_server: StartServer, sim: SimControl, tmp_path: Path, log: McpLog
) -> None:
    # Far longer than the test could wait: `unavailable` comes from the loss, not a timeout.
    url = await start_with_stdio(start_server, tmp_path, log, {"timeoutSeconds": 60})
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        call = await open_call(client, sim)
        started = trio.current_time()
        crashed = await call.call_tool("shop__crash", timeout_seconds=30)
        answered_after = trio.current_time() - started

        async def restarted() -> bool:
            return (await tools_of(client))["mcpServers"]["shop"]["state"] == "connected"

        await wait_until(restarted, seconds=30)
        echo = await call.call_tool("shop__echo_text", {"text": "again"})
        view = (await client.get(f"/session/{call.session_id}")).json()

    assert crashed.output["ok"] is False
    assert crashed.output["reason"] == "unavailable"
    assert answered_after < 30  # loosely: well before the tool's 60 s timeout
    assert echo.output == "echo: again"
    assert len(log.entries("started")) == 2
    assert view["sideband"]["state"] == "connected"  # the call never ended


async def test_a_call_past_its_timeout_is_cancelled_on_the_server_which_stays_usable(
    start_server: StartServer, sim: SimControl, tmp_path: Path, log: McpLog
) -> None:
    url = await start_with_stdio(start_server, tmp_path, log, {"timeoutSeconds": 0.5})
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        call = await open_call(client, sim)
        slow = await call.call_tool("shop__wait", {"seconds": 30})

        async def cancelled() -> bool:
            return bool(log.entries("cancelled"))

        await wait_until(cancelled)
        echo = await call.call_tool("shop__echo_text", {"text": "still here"})

    assert slow.output["reason"] == "timeout"
    assert echo.output == "echo: still here"
    assert len(log.entries("started")) == 1  # the same client, not a new one


async def test_tools_list_changed_pushes_the_new_tool_list_to_a_live_call(
    start_server: StartServer, sim: SimControl, tmp_path: Path, log: McpLog
) -> None:
    url = await start_with_stdio(start_server, tmp_path, log)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        call = await open_call(client, sim)
        added = await call.call_tool("shop__add_tool", {"name": "weather"})

        async def pushed() -> dict[str, Any] | None:
            for update in await call.client_events("session.update"):
                if "shop__weather" in offered_tools(update):
                    return update
            return None

        update = await wait_until(pushed)
        hello = await call.call_tool("shop__weather")
        listed = await tools_of(client)

    assert added.output == "added"
    assert "shop__lookup_order" in offered_tools(update)  # the whole list, not only the new one
    assert "extract_profile" in offered_tools(update)
    assert hello.output == "hello from weather"
    assert "shop__weather" in [tool["name"] for tool in listed["tools"]]


# -- streamable HTTP ----------------------------------------------------------------------------


async def test_a_streamable_http_server_with_headers_from_the_environment(
    start_server: StartServer,
    sim: SimControl,
    tmp_path: Path,
    log: McpLog,
    nursery: trio.Nursery,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    http = HttpMcpServer(log, env={"MCP_TEST_REQUIRED_HEADER": "Bearer s3cret"})
    await http.start(nursery)
    monkeypatch.setenv("CRM_TOKEN", "s3cret")
    servers = write_servers_file(
        tmp_path,
        {"crm": {"url": http.url, "headers": {"Authorization": "Bearer ${CRM_TOKEN}"}}},
    )
    url = await start_server(mcp_servers_file=servers)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        listed = await tools_of(client)
        call = await open_call(client, sim)
        order = await call.call_tool("crm__lookup_order", {"order_id": "CD-5678"})
        failed = await call.call_tool("crm__fail", {"message": "no"})
        [update, *_] = await call.client_events("session.update")
    await http.stop()

    assert listed["mcpServers"]["crm"]["state"] == "connected"
    assert listed["mcpServers"]["crm"]["transport"] == "http"
    assert "crm__lookup_order" in offered_tools(update)
    assert order.output == {"orderId": "CD-5678", "status": "shipped", "items": 2}
    assert failed.output == {"ok": False, "reason": "tool_error", "message": "no"}


async def test_an_http_server_killed_mid_call_is_reconnected_once_it_is_back(
    start_server: StartServer, sim: SimControl, tmp_path: Path, log: McpLog, nursery: trio.Nursery
) -> None:
    http = HttpMcpServer(log)
    await http.start(nursery)
    servers = write_servers_file(tmp_path, {"crm": {"url": http.url, "timeoutSeconds": 60}})
    url = await start_server(mcp_servers_file=servers)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        call = await open_call(client, sim)
        async with trio.open_nursery() as calls:
            answers: list[Any] = []

            async def slow_call() -> None:
                answers.append(
                    await call.call_tool("crm__wait", {"seconds": 50}, timeout_seconds=30)
                )

            async def waiting() -> bool:
                return bool(log.calls("wait"))

            calls.start_soon(slow_call)
            await wait_until(waiting)
            started = trio.current_time()
            await http.stop()
        answered_after = trio.current_time() - started
        await http.start(nursery)

        async def works_again() -> Any:
            echo = await call.call_tool("crm__echo_text", {"text": "back"})
            return echo.output == "echo: back"

        await wait_until(works_again, seconds=60)
        await http.stop()

    assert answers[0].output["reason"] == "unavailable"
    assert answered_after < 30  # loosely: not the 60 s timeout


async def test_a_server_unreachable_at_start_up_is_offered_once_it_answers(
    start_server: StartServer, sim: SimControl, tmp_path: Path, log: McpLog, nursery: trio.Nursery
) -> None:
    http = HttpMcpServer(log)
    servers = write_servers_file(tmp_path, {"late": {"url": http.url}})
    url = await start_server(mcp_servers_file=servers)  # nothing listens there yet
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        before = await tools_of(client)
        call = await open_call(client, sim)
        await http.start(nursery)

        async def pushed() -> bool:
            updates = await call.client_events("session.update")
            return any("late__echo_text" in offered_tools(u) for u in updates)

        await wait_until(pushed, seconds=60)
        after = await tools_of(client)
        echo = await call.call_tool("late__echo_text", {"text": "hello"})
    await http.stop()

    assert before["mcpServers"]["late"]["state"] in {"connecting", "reconnecting"}
    assert before["mcpServers"]["late"]["lastError"]
    assert not [t for t in before["tools"] if t["source"] == "mcp:late"]
    assert after["mcpServers"]["late"]["state"] == "connected"
    assert echo.output == "echo: hello"


# -- configuration ------------------------------------------------------------------------------


def serve_with(servers_file: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`realtime-trio serve` with *servers_file*, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "realtime_trio", "serve", "--port", "0"],
        env={
            "PATH": "/usr/bin:/bin",
            "MCP_SERVERS_FILE": str(servers_file),
            "PLUGIN_ENTRY_POINTS": "false",
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "is not valid JSON"),
        ('{"servers": {}}', 'has no "mcpServers" object'),
        ('{"mcpServers": {"broken": {"args": ["x"]}}}', "entry 'broken' has neither"),
        (
            '{"mcpServers": {"two": {"command": "x", "url": "http://h/mcp"}}}',
            "entry 'two' has both",
        ),
        (
            '{"mcpServers": {"crm": {"url": "http://h", "headers": {"A": "${NOPE_UNSET}"}}}}',
            "NOPE_UNSET",
        ),
    ],
)
def test_a_bad_servers_file_stops_start_up_with_one_line(
    tmp_path: Path, content: str, expected: str
) -> None:
    servers_file = tmp_path / "servers.json"
    servers_file.write_text(content)
    done = serve_with(servers_file, tmp_path)

    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"realtime-trio: MCP_SERVERS_FILE {servers_file}")
    assert expected in line


def test_tool_names_that_clash_stop_start_up_naming_both(tmp_path: Path) -> None:
    log = McpLog(tmp_path / "mcp.log")
    # Both servers offer the same tools, and "a.b" becomes "a_b" in a name on calls.
    servers_file = write_servers_file(tmp_path, {"a_b": stdio_entry(log), "a.b": stdio_entry(log)})
    done = serve_with(servers_file, tmp_path)

    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    line = done.stderr.strip().splitlines()[-1]  # after the log lines of start-up
    assert line.startswith(f"realtime-trio: MCP_SERVERS_FILE {servers_file}: ")
    assert re.search(r"becomes 'a_b__\w+' on calls, the name of a tool of mcp:a[._]b$", line)
    assert "MCP server 'a.b'" in line or "MCP server 'a_b'" in line


def test_names_on_calls_fit_what_the_realtime_api_accepts() -> None:
    assert call_name("calendar", "list_events") == "calendar__list_events"
    assert call_name("my server", "get.item/v2") == "my_server__get_item_v2"
    long = call_name("s" * 40, "t" * 40)
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", long)
    assert len(long) == 64
    assert long != call_name("s" * 40, "t" * 39 + "u")  # still one name per tool


def test_env_and_headers_are_filled_from_the_environment_and_disabled_entries_skipped(
    tmp_path: Path,
) -> None:
    path = write_servers_file(
        tmp_path,
        {
            "cal": {"command": "cal-mcp", "env": {"TOKEN": "${CAL_TOKEN}", "MODE": "x-${MODE}"}},
            "crm": {"url": "https://crm.example/mcp", "headers": {"X-Key": "${CRM_KEY}"}},
            "off": {"command": "nothing", "disabled": True},
        },
    )
    servers = load_mcp_servers(path, {"CAL_TOKEN": "t1", "MODE": "fast", "CRM_KEY": "k2"})

    assert [s.name for s in servers] == ["cal", "crm"]
    assert servers[0].env == {"TOKEN": "t1", "MODE": "x-fast"}
    assert servers[1].headers == {"X-Key": "k2"}
    with pytest.raises(McpConfigError, match=r"entry 'cal' uses \$\{CAL_TOKEN\}, which is not set"):
        load_mcp_servers(path, {})


def test_the_servers_file_format_other_clients_write_is_taken_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "claude_desktop_config.json"
    path.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "files": {
                        "type": "stdio",
                        "command": "npx",
                        "args": ["-y", "@modelcontextprotocol/server-filesystem", "/srv"],
                    },
                    "remote": {"type": "http", "url": "https://example.com/mcp"},
                },
                "globalShortcut": "Ctrl+Space",
            }
        )
    )
    servers = load_mcp_servers(path, {})
    assert [(s.name, s.transport) for s in servers] == [("files", "stdio"), ("remote", "http")]


# -- the guide ----------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "mcp-tools.md"


def json_blocks() -> list[str]:
    return re.findall(r"^```json\n(.*?)^```$", GUIDE.read_text(), re.DOTALL | re.MULTILINE)


async def test_the_guides_first_example_works_as_copied(
    start_server: StartServer,
    sim: SimControl,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As a reader runs it: from the checkout, its virtualenv active.
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    servers = tmp_path / "mcp_servers.json"
    servers.write_text(json_blocks()[0])
    url = await start_server(mcp_servers_file=servers)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        listed = await tools_of(client)
        call = await open_call(client, sim)
        slot = await call.call_tool("clinic__next_free_slot", {"department": "general"})

    [tool] = [t for t in listed["tools"] if t["source"] == "mcp:clinic"]
    assert tool["name"] == "clinic__next_free_slot"
    assert tool["parameters"]["properties"]["department"]["enum"] == [
        "dermatology",
        "cardiology",
        "general",
    ]
    assert slot.output["department"] == "general"
    assert slot.output["slot"].startswith("2026-12-07T")


def test_the_guides_other_examples_are_valid(tmp_path: Path) -> None:
    remote, state = json_blocks()[1], json_blocks()[2]
    path = tmp_path / "remote.json"
    path.write_text(remote)
    [crm] = load_mcp_servers(path, {"CRM_TOKEN": "t0k"})
    assert crm.headers == {"Authorization": "Bearer t0k"}
    assert crm.allowedTools == ["find_customer", "open_ticket"]
    shown = json.loads("{" + state + "}")["mcpServers"]["clinic"]
    assert set(shown) == {"state", "transport", "tools", "lastError"}


async def test_the_output_cap_applies_to_mcp_results(
    start_server: StartServer, sim: SimControl, tmp_path: Path, log: McpLog
) -> None:
    url = await start_with_stdio(start_server, tmp_path, log, tool_output_max_bytes=200)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        call = await open_call(client, sim)
        big = await call.call_tool("shop__echo_text", {"text": "x" * 500})
        small = await call.call_tool("shop__echo_text", {"text": "ok"})

    assert big.output["reason"] == "output_too_large"
    assert small.output == "echo: ok"


def test_sigterm_ends_the_stdio_servers_with_the_server(tmp_path: Path) -> None:
    log = McpLog(tmp_path / "mcp.log")
    servers_file = write_servers_file(tmp_path, {"shop": stdio_entry(log)})
    port = closed_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "realtime_trio", "serve", "--port", str(port)],
        env={
            "PATH": "/usr/bin:/bin",
            "MCP_SERVERS_FILE": str(servers_file),
            "PLUGIN_ENTRY_POINTS": "false",
        },
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        state = None
        for _ in range(300):
            try:
                state = httpx.get(f"http://127.0.0.1:{port}/tools").json()["mcpServers"]
            except httpx.TransportError:
                time.sleep(0.1)
                continue
            break
        assert state is not None
        assert state["shop"]["state"] == "connected"
        [started] = log.entries("started")
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    finally:
        server.kill()
    with pytest.raises(ProcessLookupError):  # the MCP server went with it
        os.kill(started["pid"], 0)
