"""Plugins: discovery, the tools they add, how calls are dispatched, and every hook.

Each hook spec has a `test_hook_<name>` here that exercises it over the running server
(`test_hookspecs.py` checks that none is missing).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from pydantic import BaseModel, Field

from conftest import make_settings
from realtime_trio import Tool, ToolContext, ToolResult, hookimpl
from realtime_trio._plugins import PluginError, load_plugins
from realtime_trio.simulator import DEFAULT_API_KEY, RunningSimulator
from realtime_trio.testing import StartServer, open_call
from sim_client import SimControl, live_session, session_state, wait_until


class Order(BaseModel):
    order_number: str = Field(description="The customer-facing order number.")
    quantity: int = Field(default=1, ge=1)


class Nap(BaseModel):
    seconds: float


class ShopPlugin:
    """A throwaway plugin with a tool for every path of the dispatcher."""

    name = "shop"

    def __init__(self) -> None:
        self.results: list[tuple[str, str, Any]] = []
        self.entries: list[tuple[str, str]] = []

    @hookimpl
    def rt_register_tools(self) -> list[Tool]:
        return [
            Tool(
                "lookup_order",
                "Look up an order.",
                self.lookup,
                parameters=Order,
                guidance="Look orders up.",
            ),
            Tool("explode", "Always fails.", self.explode),
            Tool("nap", "Sleeps.", self.nap, parameters=Nap, timeout_seconds=0.3),
            Tool("quiet", "Answers but lets the caller respond.", self.quiet),
        ]

    async def lookup(self, context: ToolContext, arguments: Order) -> dict[str, Any]:
        return {
            "ok": True,
            "order": arguments.order_number,
            "quantity": arguments.quantity,
            "session": context.session_id,
        }

    async def explode(self, context: ToolContext, arguments: Any) -> None:
        raise RuntimeError("kaboom")

    async def nap(self, context: ToolContext, arguments: Nap) -> dict[str, Any]:
        await trio.sleep(arguments.seconds)
        return {"ok": True}

    async def quiet(self, context: ToolContext, arguments: Any) -> ToolResult:
        return ToolResult({"ok": True}, create_response=False)

    @hookimpl
    def rt_tool_result(self, tool: str, call_id: str, output: Any) -> None:
        self.results.append((tool, call_id, output))

    @hookimpl
    def rt_transcript_entry(self, entry: Any) -> None:
        self.entries.append((entry.role, entry.text))


@pytest.fixture
def shop() -> ShopPlugin:
    return ShopPlugin()


@pytest.fixture
async def shop_client(
    start_server: StartServer, shop: ShopPlugin
) -> AsyncIterator[httpx.AsyncClient]:
    url = await start_server(plugins=[shop])
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        yield client


async def test_tools_are_listed_with_their_plugin(shop_client: httpx.AsyncClient) -> None:
    response = await shop_client.get("/tools")

    tools = {tool["name"]: tool for tool in response.json()["tools"]}
    assert list(tools) == ["extract_profile", "lookup_order", "explode", "nap", "quiet"]
    assert tools["extract_profile"]["plugin"] == "builtin"
    assert tools["lookup_order"] == {
        "name": "lookup_order",
        "description": "Look up an order.",
        "parameters": {
            "type": "object",
            "properties": {
                "order_number": {
                    "type": "string",
                    "title": "Order Number",
                    "description": "The customer-facing order number.",
                },
                "quantity": {"type": "integer", "title": "Quantity", "default": 1, "minimum": 1},
            },
            "required": ["order_number"],
        },
        "plugin": "shop",
        "source": "plugin",
    }


async def test_hook_rt_register_tools(
    shop_client: httpx.AsyncClient, sim: SimControl, shop: ShopPlugin
) -> None:
    """Every registered tool reaches the call and the client secret, and answers the model."""
    call = await open_call(shop_client, sim)

    (update,) = await call.client_events("session.update")
    names = ["extract_profile", "lookup_order", "explode", "nap", "quiet"]
    assert [tool["name"] for tool in update["session"]["tools"]] == names
    assert update["session"]["tools"][1] == shop.rt_register_tools()[0].definition()
    assert "Look orders up." in update["session"]["instructions"]
    minted = (await sim.requests("/v1/realtime/client_secrets"))[-1]["body"]["session"]
    assert [tool["name"] for tool in minted["tools"]] == names
    answered = await call.call_tool("lookup_order", {"order_number": "42"})
    assert answered.output == {
        "ok": True,
        "order": "42",
        "quantity": 1,
        "session": call.session_id,
    }
    await shop_client.post("/token", json={})
    assert "tools" not in (await sim.requests("/v1/realtime/client_secrets"))[-1]["body"]["session"]


async def test_a_plugin_tool_answers_the_model(
    shop_client: httpx.AsyncClient, sim: SimControl, shop: ShopPlugin
) -> None:
    session_id, call_id = await live_session(shop_client, sim)

    result = await sim.drive(
        call_id, "tool-call", name="lookup_order", arguments={"order_number": "1234"}
    )

    assert json.loads(result["output"]) == {
        "ok": True,
        "order": "1234",
        "quantity": 1,
        "session": session_id,
    }
    assert result["responseCreated"] is True
    outputs = await sim.client_events(call_id, "conversation.item.create")
    assert [o["item"]["call_id"] for o in outputs] == [result["callId"]]
    assert shop.results == [("lookup_order", result["callId"], json.loads(result["output"]))]


@pytest.mark.parametrize(
    ("name", "arguments", "reason", "message"),
    [
        (
            "lookup_order",
            {"quantity": 0},
            "invalid_arguments",
            "Invalid arguments for 'lookup_order': order_number: Field required; "
            "quantity: Input should be greater than or equal to 1",
        ),
        (
            "lookup_order",
            '{"order_number": ',
            "invalid_arguments",
            "The arguments for 'lookup_order' are not valid JSON.",
        ),
        ("find_treasure", {}, "unknown_tool", "There is no tool named 'find_treasure'."),
        ("explode", {}, "error", "The tool 'explode' failed: RuntimeError."),
        ("nap", {"seconds": 30}, "timeout", "The tool 'nap' did not answer within 0.3 seconds."),
    ],
)
async def test_a_failing_call_is_an_error_output_and_the_session_lives_on(
    shop_client: httpx.AsyncClient,
    sim: SimControl,
    name: str,
    arguments: Any,
    reason: str,
    message: str,
) -> None:
    session_id, call_id = await live_session(shop_client, sim)

    result = await sim.drive(call_id, "tool-call", name=name, arguments=arguments)

    output = json.loads(result["output"])
    assert (output["ok"], output["reason"]) == (False, reason)
    assert output["message"].startswith(message)
    assert result["responseCreated"] is True
    assert (await session_state(shop_client, session_id))["sideband"] == {"state": "connected"}
    again = await sim.drive(
        call_id, "tool-call", name="lookup_order", arguments={"order_number": "7"}
    )
    assert json.loads(again["output"])["ok"] is True


async def test_a_tool_may_leave_the_next_response_to_itself(
    shop_client: httpx.AsyncClient, sim: SimControl
) -> None:
    _, call_id = await live_session(shop_client, sim)

    result = await sim.drive(call_id, "tool-call", name="quiet", timeoutSeconds=1)

    assert json.loads(result["output"]) == {"ok": True}
    assert result["responseCreated"] is False


async def test_parallel_calls_in_one_response_get_one_response_create(
    shop_client: httpx.AsyncClient, sim: SimControl
) -> None:
    _, call_id = await live_session(shop_client, sim)
    calls = [
        ("call_a", "lookup_order", '{"order_number": "1"}'),
        ("call_b", "nap", '{"seconds": 0.1}'),
    ]
    items = [
        {
            "id": f"item_{cid}",
            "object": "realtime.item",
            "type": "function_call",
            "status": "completed",
            "name": name,
            "call_id": cid,
            "arguments": args,
        }
        for cid, name, args in calls
    ]
    events: list[dict[str, Any]] = [
        {
            "type": "response.created",
            "event_id": "event_p1",
            "response": {
                "object": "realtime.response",
                "id": "resp_par",
                "status": "in_progress",
                "output": [],
            },
        },
    ]
    for index, (cid, name, args) in enumerate(calls):
        events.append(
            {
                "type": "response.function_call_arguments.done",
                "event_id": f"event_p{index + 2}",
                "response_id": "resp_par",
                "item_id": f"item_{cid}",
                "output_index": index,
                "call_id": cid,
                "name": name,
                "arguments": args,
            }
        )
    events.append(
        {
            "type": "response.done",
            "event_id": "event_p9",
            "response": {
                "object": "realtime.response",
                "id": "resp_par",
                "status": "completed",
                "output": items,
            },
        }
    )

    for event in events:
        await sim.drive(call_id, "send", event=event)

    async def answered() -> list[dict[str, Any]] | None:
        sent = [e for e in await sim.client_events(call_id) if e["type"] != "session.update"]
        return sent if sent and sent[-1]["type"] == "response.create" else None

    sent = await wait_until(answered)
    assert sorted(
        e["item"]["call_id"] for e in sent if e["type"] == "conversation.item.create"
    ) == ["call_a", "call_b"]
    assert [e["type"] for e in sent].count("response.create") == 1
    assert sent[-1]["type"] == "response.create"


async def test_observers_may_take_only_some_arguments(
    shop_client: httpx.AsyncClient, sim: SimControl, shop: ShopPlugin
) -> None:
    _, call_id = await live_session(shop_client, sim, enableTranscription=True)

    await sim.drive(call_id, "replies", text="Hi!")  # voice activity's answer to the user
    await sim.drive(call_id, "user", text="Hello there.", transcriptionDelayMs=100)

    await wait_until(lambda: _at_least(shop.entries, 2))
    assert sorted(shop.entries) == [("assistant", "Hi!"), ("user", "Hello there.")]


async def _at_least(seen: list[Any], n: int) -> bool:
    return len(seen) >= n


class Observer:
    """A plugin that records what the observer hooks see, taking every argument they offer."""

    name = "observer"

    def __init__(self) -> None:
        self.results: list[tuple[str, str, str, Any]] = []
        self.entries: list[tuple[str, str, str, str]] = []

    @hookimpl
    def rt_tool_result(self, session_id: str, tool: str, call_id: str, output: Any) -> None:
        self.results.append((session_id, tool, call_id, output))

    @hookimpl
    def rt_transcript_entry(self, session_id: str, entry: Any) -> None:
        self.entries.append((session_id, entry.role, entry.text, entry.status))


async def test_hook_rt_transcript_entry(start_server: StartServer, sim: SimControl) -> None:
    """Each turn is observed once its text is final, a failed transcription too."""
    observer = Observer()
    url = await start_server(plugins=[observer])
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        call = await open_call(client, sim, enableTranscription=True)

        # voice activity answers each turn with the queued reply
        await sim.drive(call.call_id, "replies", text="Hi! How can I help?")
        await sim.drive(call.call_id, "replies", text="Sorry, say again?")
        await sim.drive(call.call_id, "user", text="Hello there.", transcriptionDelayMs=100)
        await sim.drive(call.call_id, "user", text="(mumble)", transcriptionFails=True)
        await wait_until(lambda: _at_least(observer.entries, 4))
        transcript = (await session_state(client, call.session_id))["transcript"]

    assert sorted(observer.entries) == sorted(
        [
            (call.session_id, "user", "Hello there.", "complete"),
            (call.session_id, "assistant", "Hi! How can I help?", "complete"),
            (call.session_id, "user", "", "failed"),
            (call.session_id, "assistant", "Sorry, say again?", "complete"),
        ]
    )
    assert sorted((e["role"], e["text"], e["status"]) for e in transcript) == sorted(
        entry[1:] for entry in observer.entries
    )


async def test_hook_rt_tool_result(
    start_server: StartServer, sim: SimControl, shop: ShopPlugin
) -> None:
    """Every output a call is answered with is observed as it crossed the wire, error
    outputs included."""
    observer = Observer()
    url = await start_server(plugins=[shop, observer])
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        call = await open_call(client, sim)

        found = await call.call_tool("lookup_order", {"order_number": "1234"})
        refused = await call.call_tool("lookup_order", {"quantity": 0})
        unknown = await call.call_tool("find_treasure")

    assert (found.output["ok"], refused.output["reason"], unknown.output["reason"]) == (
        True,
        "invalid_arguments",
        "unknown_tool",
    )
    assert observer.results == [
        (call.session_id, "lookup_order", found.call_id, found.output),
        (call.session_id, "lookup_order", refused.call_id, refused.output),
        (call.session_id, "find_treasure", unknown.call_id, unknown.output),
    ]


# -- hooks that replace -----------------------------------------------------------------


class Onboarding(BaseModel):
    city: str | None = None
    job: str | None = None


class OnboardingPlugin:
    name = "onboarding"

    @hookimpl
    def rt_profile_model(self) -> type[BaseModel]:
        return Onboarding

    @hookimpl
    def rt_build_instructions(self, base: str, profile: dict[str, Any]) -> str:
        known = ", ".join(f"{k}={v}" for k, v in profile.items() if v) or "nothing"
        return f"ONBOARDING. {base} Known: {known}."


class OnboardingModel:
    name = "onboarding-model"

    @hookimpl
    def rt_profile_model(self) -> type[BaseModel]:
        return Onboarding


async def test_hook_rt_profile_model(start_server: StartServer, sim: SimControl) -> None:
    """A new session starts with the plugin's profile, and extraction fills its fields."""
    url = await start_server(plugins=[OnboardingModel()])
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        call = await open_call(client, sim, enableTranscription=True)
        assert (await session_state(client, call.session_id))["profile"] == {
            "city": None,
            "job": None,
        }
        await sim.drive(call.call_id, "user", text="I live in Lisbon and I work as a nurse.")
        await wait_until(lambda: _transcribed(client, call.session_id))

        extracted = await call.call_tool("extract_profile")

        view = await session_state(client, call.session_id)
    profile = {"city": "Lisbon", "job": "nurse"}
    assert extracted.output == {"ok": True, "profile": profile}
    assert view["profile"] == profile
    (asked,) = await sim.requests("/v1/responses")
    schema = asked["body"]["text"]["format"]["schema"]
    assert (schema["required"], schema["additionalProperties"]) == (["city", "job"], False)
    # The default instructions tell the call what is known of the user, in the new model.
    (*_, update) = await call.client_events("session.update")
    assert "Lisbon" in update["session"]["instructions"]


class Concise:
    """A plugin that builds the instructions itself, noting what it is given."""

    name = "concise"

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any], list[str]]] = []

    @hookimpl
    def rt_build_instructions(self, base: str, profile: dict[str, Any], tools: list[Tool]) -> str:
        self.seen.append((base, dict(profile), [tool.name for tool in tools]))
        known = ", ".join(f"{k}={v}" for k, v in profile.items() if v) or "nothing"
        return f"CONCISE. {base} Known: {known}."


async def test_hook_rt_build_instructions(start_server: StartServer, sim: SimControl) -> None:
    """The plugin's instructions are minted into the client secret, sent on attach, and sent
    again once the profile changes."""
    concise = Concise()
    url = await start_server(plugins=[concise])
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        call = await open_call(client, sim, enableTranscription=True, instructions="Be brief.")
        (minted,) = await sim.requests("/v1/realtime/client_secrets")
        (attached,) = await call.client_events("session.update")
        await sim.drive(call.call_id, "user", text="Hi, my name is Ada Lovelace.")
        await wait_until(lambda: _transcribed(client, call.session_id))

        extracted = await call.call_tool("extract_profile")

        view = await session_state(client, call.session_id)
    first = "CONCISE. Be brief. Known: nothing."
    assert minted["body"]["session"]["instructions"] == first
    assert attached["session"]["instructions"] == first
    assert extracted.output["ok"] is True
    after = "CONCISE. Be brief. Known: first_name=Ada, last_name=Lovelace."
    assert (await call.client_events("session.update"))[-1]["session"]["instructions"] == after
    assert view["instructions"] == after
    assert concise.seen[0] == (
        "Be brief.",
        {"first_name": None, "last_name": None, "income": None},
        ["extract_profile"],
    )


async def test_a_plugin_replaces_the_profile_model_and_the_instructions(
    start_server: StartServer, sim: SimControl, simulator: RunningSimulator
) -> None:
    url = await start_server(plugins=[OnboardingPlugin()])
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        session_id, call_id = await live_session(
            client, sim, enableTranscription=True, instructions="Be brief."
        )
        assert (await session_state(client, session_id))["profile"] == {"city": None, "job": None}
        await sim.drive(call_id, "user", text="I live in Lisbon and I work as a nurse.")
        await wait_until(lambda: _transcribed(client, session_id))

        result = await sim.drive(call_id, "tool-call", name="extract_profile")

        profile = {"city": "Lisbon", "job": "nurse"}
        assert json.loads(result["output"]) == {"ok": True, "profile": profile}
        view = await session_state(client, session_id)
    assert view["profile"] == profile
    assert view["instructions"] == "ONBOARDING. Be brief. Known: city=Lisbon, job=nurse."
    schema = simulator.state.requests_to("/v1/responses")[-1].body["text"]["format"]["schema"]
    assert schema["required"] == ["city", "job"]
    updates = await sim.client_events(call_id, "session.update")
    assert updates[-1]["session"]["instructions"] == view["instructions"]


async def _transcribed(client: httpx.AsyncClient, session_id: str) -> bool:
    entries = (await session_state(client, session_id))["transcript"]
    return bool(entries) and all(e["status"] == "complete" for e in entries)


# -- discovery --------------------------------------------------------------------------

PLUGIN_SOURCE = textwrap.dedent(
    """
    from realtime_trio import Tool, hookimpl

    async def ping(context, arguments):
        return {"ok": True, "pong": context.session_id}

    @hookimpl
    def rt_register_tools():
        return [Tool("ping", "Answers pong.", ping)]
    """
)


def test_plugins_load_from_a_file_path_and_a_module_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pinger.py").write_text(PLUGIN_SOURCE)
    (tmp_path / "pinger_module.py").write_text(PLUGIN_SOURCE.replace('"ping"', '"ping2"'))
    monkeypatch.syspath_prepend(str(tmp_path))

    registry = load_plugins(
        make_settings(realtime_plugins=f"{tmp_path / 'pinger.py'}, pinger_module")
    )

    assert [(t.tool.name, t.plugin) for t in registry.tools] == [
        ("extract_profile", "builtin"),
        ("ping", str(tmp_path / "pinger.py")),
        ("ping2", "pinger_module"),
    ]


def test_installed_plugins_load_through_their_entry_point() -> None:
    registry = load_plugins(make_settings(plugin_entry_points=True))

    assert ("get_current_time", "clock") in [(t.tool.name, t.plugin) for t in registry.tools]


def test_two_tools_with_one_name_stop_start_up(tmp_path: Path) -> None:
    (tmp_path / "one.py").write_text(PLUGIN_SOURCE)
    (tmp_path / "two.py").write_text(PLUGIN_SOURCE)

    one, two = tmp_path / "one.py", tmp_path / "two.py"

    with pytest.raises(PluginError) as raised:
        load_plugins(make_settings(realtime_plugins=f"{one},{two}"))

    assert str(raised.value) == f"tool 'ping' is registered by both plugins '{one}' and '{two}'"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            "import not_a_module_anywhere\n",
            "plugin '{path}' failed to load: ModuleNotFoundError: "
            "No module named 'not_a_module_anywhere'",
        ),
        ("raise RuntimeError('boom')\n", "plugin '{path}' failed to load: RuntimeError: boom"),
    ],
)
def test_a_broken_plugin_stops_serve_with_one_line_naming_it(
    tmp_path: Path, source: str, message: str
) -> None:
    path = tmp_path / "broken.py"
    path.write_text(source)
    env = {
        "PATH": "",
        "REALTIME_PLUGINS": str(path),
        "PLUGIN_ENTRY_POINTS": "false",
        "OPENAI_API_KEY": DEFAULT_API_KEY,
    }

    result = subprocess.run(
        [sys.executable, "-m", "realtime_trio", "serve"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"realtime-trio: {message.format(path=path)}"]


def test_a_missing_plugin_module_is_named(tmp_path: Path) -> None:
    with pytest.raises(PluginError) as raised:
        load_plugins(make_settings(realtime_plugins="no_such_plugin_module"))

    assert str(raised.value) == (
        "plugin 'no_such_plugin_module' failed to load: ModuleNotFoundError: "
        "No module named 'no_such_plugin_module'"
    )


# -- the hook contract, checked at load ---------------------------------------------------

MISSPELT_HOOK = textwrap.dedent(
    """
    from realtime_trio import Tool, hookimpl

    @hookimpl
    def rt_register_tool():
        return []
    """
)


def test_a_hook_that_does_not_exist_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    path = tmp_path / "misspelt.py"
    path.write_text(MISSPELT_HOOK)

    with pytest.raises(PluginError) as raised:
        load_plugins(make_settings(realtime_plugins=str(path)))

    assert str(raised.value) == (
        f"plugin '{path}' implements rt_register_tool, which is not a realtime-trio hook "
        "(did you mean rt_register_tools?)"
    )


def test_a_hook_far_from_any_name_is_refused_without_a_suggestion() -> None:
    class Stranger:
        name = "stranger"

        @hookimpl
        def rt_zzz(self) -> None: ...

    with pytest.raises(PluginError) as raised:
        load_plugins(make_settings(), extra=[Stranger()])

    assert str(raised.value) == (
        "plugin 'stranger' implements rt_zzz, which is not a realtime-trio hook"
    )


def test_an_optional_hook_that_does_not_exist_is_allowed() -> None:
    class Ahead:
        """A plugin written for a later version, as pluggy's `optionalhook` allows."""

        @hookimpl(optionalhook=True)
        def rt_session_started(self, session_id: str) -> None: ...

        @hookimpl
        def rt_register_tools(self) -> list[Tool]:
            return []

    registry = load_plugins(make_settings(), extra=[Ahead()])

    assert [name for name, _ in registry.manager.list_name_plugin()] == ["builtin", "Ahead"]


def test_an_rt_function_without_hookimpl_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "unmarked.py"
    path.write_text("def rt_register_tools():\n    return []\n")

    with pytest.raises(PluginError) as raised:
        load_plugins(make_settings(realtime_plugins=str(path)))

    assert str(raised.value) == (
        f"plugin '{path}' defines rt_register_tools without @hookimpl, so it would never be "
        "called: mark it with @hookimpl (from realtime_trio import hookimpl)"
    )


def test_an_rt_method_without_hookimpl_is_refused_with_a_suggestion() -> None:
    class Forgetful:
        name = "forgetful"

        def rt_build_instruction(self, base: str) -> str:
            return base

    with pytest.raises(PluginError) as raised:
        load_plugins(make_settings(), extra=[Forgetful()])

    assert str(raised.value) == (
        "plugin 'forgetful' defines rt_build_instruction (did you mean rt_build_instructions?) "
        "without @hookimpl, so it would never be called: mark it with @hookimpl "
        "(from realtime_trio import hookimpl)"
    )


def test_only_the_plugins_own_functions_are_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Imported modules are not looked into, and `rt_` names that are no functions are fine."""
    (tmp_path / "rt_helpers.py").write_text("def rt_not_a_hook():\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "rt_helpers", raising=False)
    path = tmp_path / "tidy.py"
    path.write_text(
        textwrap.dedent(
            """
            import rt_helpers
            from realtime_trio import hookimpl

            rt_settings = {"colour": "blue"}

            class rt_Note:
                pass

            @hookimpl
            def rt_register_tools():
                return []
            """
        )
    )

    registry = load_plugins(make_settings(realtime_plugins=str(path)))

    assert [t.tool.name for t in registry.tools] == ["extract_profile"]


def test_a_misspelt_hook_stops_serve_with_one_line_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "misspelt.py"
    path.write_text(MISSPELT_HOOK)
    env = {"PATH": "", "REALTIME_PLUGINS": str(path), "PLUGIN_ENTRY_POINTS": "false", "PORT": "0"}

    result = subprocess.run(
        [sys.executable, "-m", "realtime_trio", "serve"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"realtime-trio: plugin '{path}' implements rt_register_tool, which is not a "
        "realtime-trio hook (did you mean rt_register_tools?)"
    ]


class Chatty:
    """A plugin whose tool answers with as many bytes as it is asked for."""

    class Size(BaseModel):
        size: int

    async def talk(self, context: ToolContext, arguments: Chatty.Size) -> dict[str, Any]:
        return {"ok": True, "text": "x" * arguments.size}

    @hookimpl
    def rt_register_tools(self) -> list[Tool]:
        return [Tool(name="talk", description="Talks.", handler=self.talk, parameters=self.Size)]


async def test_an_output_over_the_limit_becomes_an_error_and_the_session_lives_on(
    start_server: StartServer, sim: SimControl
) -> None:
    url = await start_server(plugins=[Chatty()], tool_output_max_bytes=1_000)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        session_id, call_id = await live_session(client, sim)
        big = await sim.drive(call_id, "tool-call", name="talk", arguments={"size": 5_000})
        small = await sim.drive(call_id, "tool-call", name="talk", arguments={"size": 10})
        state = await session_state(client, session_id)

    assert json.loads(big["output"]) == {
        "ok": False,
        "reason": "output_too_large",
        "message": "The tool 'talk' returned 5024 bytes, more than the limit of 1000.",
    }
    assert big["responseCreated"] is True
    assert json.loads(small["output"]) == {"ok": True, "text": "x" * 10}
    assert state["sideband"]["state"] == "connected"


# -- parameters given as a JSON Schema ----------------------------------------------------------

TICKET_SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "minLength": 3},
        "priority": {"enum": ["low", "high"]},
    },
    "required": ["title"],
    "additionalProperties": False,
}


class TicketPlugin:
    name = "tickets"

    def __init__(self) -> None:
        self.received: list[Any] = []

    @hookimpl
    def rt_register_tools(self) -> list[Tool]:
        return [Tool("open_ticket", "Open a ticket.", self.open, parameters=TICKET_SCHEMA)]

    async def open(self, context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
        self.received.append(arguments)
        return {"ok": True, "ticket": arguments["title"]}


async def test_a_tool_whose_parameters_are_a_json_schema_is_offered_as_it_is(
    start_server: StartServer, sim: SimControl
) -> None:
    tickets = TicketPlugin()
    url = await start_server(plugins=[tickets])
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        listed = {t["name"]: t for t in (await client.get("/tools")).json()["tools"]}
        call = await open_call(client, sim)
        opened = await call.call_tool("open_ticket", {"title": "Printer", "priority": "high"})
        refused = await call.call_tool("open_ticket", {"title": "x", "colour": "red"})
        [update, *_] = await call.client_events("session.update")

    assert listed["open_ticket"]["parameters"] == TICKET_SCHEMA
    [offered] = [t for t in update["session"]["tools"] if t["name"] == "open_ticket"]
    assert offered["parameters"] == TICKET_SCHEMA
    assert opened.output == {"ok": True, "ticket": "Printer"}
    assert tickets.received == [{"title": "Printer", "priority": "high"}]  # the parsed object
    assert refused.output["reason"] == "invalid_arguments"
    problems = {e["field"]: e["problem"] for e in refused.output["errors"]}
    assert "is too short" in problems["title"]
    assert "colour" in problems["(arguments)"]  # additional properties are not allowed


def test_a_tool_whose_json_schema_is_not_one_stops_start_up() -> None:
    class Broken:
        name = "broken"

        @hookimpl
        def rt_register_tools(self) -> list[Tool]:
            async def handler(context: ToolContext, arguments: Any) -> None:
                return None

            return [Tool("bad", "Bad.", handler, parameters={"type": "objekt"})]

    with pytest.raises(PluginError) as raised:
        load_plugins(make_settings(), extra=[Broken()])

    assert str(raised.value).startswith(
        "plugin 'broken': the parameters of tool 'bad' are not a valid JSON Schema: "
    )
