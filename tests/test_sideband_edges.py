"""The sideband at the real API's edges, over real sockets against the simulator.

Session expiry, sockets that close right after opening, one response at a time, cancelled and
out-of-band responses, calls made while the sideband was away, liveness, client event ids,
barge-in truncation, and hanging up. Where the simulator has no control for a situation, the
test sends the events the real API sends (their shapes checked against the SDK's types).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import trio

from conftest import make_settings
from freezable_proxy import FreezableProxy
from realtime_trio import Tool, ToolContext, hookimpl
from realtime_trio._plugins import load_plugins
from realtime_trio.simulator import DEFAULT_API_KEY, RunningSimulator
from realtime_trio.simulator.validation import check_server_event
from sim_client import (
    FAST_RECONNECTS,
    SimControl,
    live_session,
    session_state,
    sockets_opened,
    wait_for_sideband,
    wait_until,
)


class CountingPlugin:
    """`count` answers at once and counts its runs."""

    name = "counting"

    def __init__(self) -> None:
        self.runs: list[dict[str, Any]] = []

    @hookimpl
    def rt_register_tools(self) -> list[Tool]:
        return [Tool("count", "Counts its calls.", self.count)]

    async def count(self, context: ToolContext, arguments: Any) -> dict[str, Any]:
        self.runs.append({"call_id": context.call_id})
        return {"ok": True, "runs": len(self.runs)}


@pytest.fixture
def counting() -> CountingPlugin:
    return CountingPlugin()


async def start_with(start_server: Any, plugin: object, **settings: Any) -> str:
    url: str = await start_server(plugins=load_plugins(make_settings(), extra=[plugin]), **settings)
    return url


async def outputs_for(sim: SimControl, call_id: str, function_call_id: str) -> list[Any]:
    return [
        json.loads(event["item"]["output"])
        for event in await sim.client_events(call_id, "conversation.item.create")
        if event["item"]["type"] == "function_call_output"
        and event["item"]["call_id"] == function_call_id
    ]


def checked(*events: dict[str, Any]) -> list[dict[str, Any]]:
    """*events*, each checked against the SDK's server event types (the real API's shapes)."""
    for event in events:
        check_server_event(event)
    return list(events)


def realtime_response(response_id: str, status: str, output: list[dict[str, Any]]) -> Any:
    return {
        "object": "realtime.response",
        "id": response_id,
        "status": status,
        "status_details": (
            {"type": "cancelled", "reason": "turn_detected"} if status == "cancelled" else None
        ),
        "output": output,
        "conversation_id": "conv_edges",
        "output_modalities": ["audio"],
        "max_output_tokens": "inf",
        "metadata": None,
        "audio": {"output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin"}},
        "usage": None,
    }


# -- session expiry and sockets that close right after opening --------------------------------


async def test_an_expired_session_ends_its_sideband_with_exactly_one_socket(
    start_server: Any, sim: SimControl
) -> None:
    url = await start_server(**FAST_RECONNECTS)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        session_id, call_id = await live_session(client, sim)

        await sim.drive(call_id, "expire")  # the API's 60 minutes are up

        view = await wait_for_sideband(client, session_id, "expired")
        assert view["sideband"]["lastError"] == (
            "Your session hit the maximum duration of 60 minutes."
        )
        assert len((await sim.call(call_id))["sockets"]) == 1  # never reconnected
        assert (await client.get(f"/session/{session_id}")).status_code == 200  # it lives on


async def test_sockets_closed_right_after_opening_give_up_after_the_attempts(
    start_server: Any, sim: SimControl
) -> None:
    url = await start_server(
        sideband_reconnect_attempts=2,
        sideband_reconnect_backoff_seconds=0.01,
        sideband_reconnect_max_backoff_seconds=0.05,
    )
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        session = (await client.post("/session", json={})).json()
        call_id = await sim.create_call(session["clientSecret"])
        # Every socket opened on the call is accepted, then closed at once with 1011.
        await sim.drive(call_id, "socket-faults", closeCode=1011, reason="boom", times=100)

        attached = await client.post(
            "/session/call", json={"sessionId": session["sessionId"], "callId": call_id}
        )
        assert attached.status_code == 200

        view = await wait_for_sideband(client, session["sessionId"], "failed")
        assert len((await sim.call(call_id))["sockets"]) == 1 + 2
        assert "gave up after 2 reconnect attempts" in view["sideband"]["lastError"]


# -- one response at a time -------------------------------------------------------------------


class SlowPlugin:
    """`slow` answers once the test lets it."""

    name = "slow"

    def __init__(self) -> None:
        self.running = trio.Event()
        self.release = trio.Event()

    @hookimpl
    def rt_register_tools(self) -> list[Tool]:
        return [Tool("slow", "Takes its time.", self.slow)]

    async def slow(self, context: ToolContext, arguments: Any) -> dict[str, Any]:
        self.running.set()
        await self.release.wait()
        return {"ok": True}


def from_the_server(call: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """What the server sent on the call's sideband sockets (the app's own events left out)."""
    return [
        received
        for received in call["clientEvents"]
        if received["socketId"] != 0 and received["event"].get("type") == kind
    ]


async def test_a_tool_waits_for_a_response_the_user_started_before_asking_for_its_own(
    start_server: Any, sim: SimControl
) -> None:
    plugin = SlowPlugin()
    url = await start_with(start_server, plugin)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            _, call_id = await live_session(client, sim)
            await sim.drive(call_id, "tool-call", name="slow", wait=False)
            await plugin.running.wait()
            # The user speaks meanwhile: voice activity starts a long answer by itself.
            await sim.drive(
                call_id, "replies", text="A long answer, word by word.", deltaDelayMs=60
            )
            await sim.drive(call_id, "user", text="Hello?", waitForResponse=False)

            plugin.release.set()  # the tool's output is ready while that answer plays

            call = await wait_until(lambda: server_created(sim, call_id))
            # Sent once the user's answer was done: the API would have refused it before.
            (create,) = from_the_server(call, "response.create")
            assert create["error"] is None
            assert create["valid"] is True
    finally:
        plugin.release.set()


async def server_created(sim: SimControl, call_id: str) -> dict[str, Any] | None:
    """The call, once the server sent a `response.create` on it."""
    call = await sim.call(call_id)
    return call if from_the_server(call, "response.create") else None


async def test_a_create_refused_all_the_same_is_sent_again_after_the_next_response(
    start_server: Any, sim: SimControl, counting: CountingPlugin
) -> None:
    url = await start_with(start_server, counting)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        _, call_id = await live_session(client, sim)
        # A response started the moment the server's create left (a race no gate can see).
        await sim.drive(
            call_id,
            "refuse",
            type="response.create",
            code="conversation_already_has_active_response",
            message="Conversation already has an active response in progress.",
        )
        await sim.drive(call_id, "tool-call", name="count", wait=False)
        refused = await wait_until(lambda: server_creates(sim, call_id, 1))
        assert refused[0]["valid"] is False

        await sim.drive(call_id, "user", text="Are you there?")  # a response comes and goes

        refused, retried = await wait_until(lambda: server_creates(sim, call_id, 2))
        assert retried["valid"] is True
        assert retried["event"]["event_id"] != refused["event"]["event_id"]


async def server_creates(sim: SimControl, call_id: str, n: int) -> list[Any] | None:
    creates = from_the_server(await sim.call(call_id), "response.create")
    return creates if len(creates) >= n else None


# -- cancelled responses ---------------------------------------------------------------------


async def test_a_call_cut_off_by_a_barge_in_is_not_run(
    start_server: Any, sim: SimControl, counting: CountingPlugin
) -> None:
    url = await start_with(start_server, counting)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        _, call_id = await live_session(client, sim)
        partial = {
            "id": "item_cut",
            "object": "realtime.item",
            "type": "function_call",
            "status": "incomplete",
            "name": "count",
            "call_id": "call_cut",
            "arguments": '{"n": ',
        }
        where = {"response_id": "resp_cut", "item_id": "item_cut", "output_index": 0}
        events = checked(
            {
                "type": "response.created",
                "event_id": "event_1",
                "response": realtime_response("resp_cut", "in_progress", []),
            },
            {
                "type": "response.function_call_arguments.done",
                "event_id": "event_2",
                **where,
                "call_id": "call_cut",
                "name": "count",
                "arguments": '{"n": ',
            },
            {
                "type": "response.output_item.done",
                "event_id": "event_3",
                "response_id": "resp_cut",
                "output_index": 0,
                "item": partial,
            },
            {
                "type": "response.done",
                "event_id": "event_4",
                "response": realtime_response("resp_cut", "cancelled", [partial]),
            },
        )
        for event in events:
            await sim.drive(call_id, "send", event=event)
        # A call of a completed response afterwards is run: the one before was passed over.
        done = await sim.drive(call_id, "tool-call", name="count")

        assert json.loads(done["output"]) == {"ok": True, "runs": 1}
        assert counting.runs == [{"call_id": done["callId"]}]
        assert await outputs_for(sim, call_id, "call_cut") == []
        assert len(await sim.client_events(call_id, "response.create")) == 1


# -- out-of-band responses -------------------------------------------------------------------

OUT_OF_BAND = {"type": "response.create", "response": {"conversation": "none"}}


async def test_an_out_of_band_response_stays_out_of_the_transcript_and_its_call_unanswered(
    start_server: Any, sim: SimControl, counting: CountingPlugin
) -> None:
    url = await start_with(start_server, counting)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        session_id, call_id = await live_session(client, sim)
        # The app asks for two responses outside the conversation: one says something, one
        # calls a tool.
        await sim.drive(call_id, "replies", text="Classified: sales.")
        await sim.drive(call_id, "app", event=OUT_OF_BAND)
        await sim.drive(call_id, "replies", toolCall={"name": "count", "arguments": {}})
        oob_call = await sim.drive(call_id, "app", event=OUT_OF_BAND)
        # Then the conversation goes on.
        await sim.drive(call_id, "assistant", text="How can I help?")

        entries = await wait_until(lambda: assistant_said(client, session_id))
        assert [e["text"] for e in entries] == ["How can I help?"]
        assert counting.runs == []
        assert await outputs_for(sim, call_id, oob_call["callId"]) == []
        assert from_the_server(await sim.call(call_id), "response.create") == []


async def assistant_said(client: httpx.AsyncClient, session_id: str) -> list[Any] | None:
    entries = (await session_state(client, session_id))["transcript"]
    return entries if entries and entries[-1]["status"] == "complete" else None


# -- client event ids and refusals ------------------------------------------------------------


async def test_a_refused_session_update_shows_in_last_error_and_is_sent_again_once(
    client: httpx.AsyncClient, sim: SimControl
) -> None:
    session = (await client.post("/session", json={})).json()
    call_id = await sim.create_call(session["clientSecret"])
    await sim.drive(call_id, "refuse", type="session.update", code="invalid_value", message="Nope.")

    await client.post("/session/call", json={"sessionId": session["sessionId"], "callId": call_id})

    updates = await wait_until(lambda: two_updates(sim, call_id))
    refused, accepted = updates
    assert refused["error"]["event_id"] == refused["event"]["event_id"]
    assert accepted["valid"] is True
    assert accepted["event"]["event_id"] != refused["event"]["event_id"]
    view = await session_state(client, session["sessionId"])
    assert view["sideband"]["lastError"] == "session.update refused: invalid_value: Nope."


async def two_updates(sim: SimControl, call_id: str) -> list[dict[str, Any]] | None:
    updates = from_the_server(await sim.call(call_id), "session.update")
    return updates if len(updates) >= 2 else None


async def test_every_client_event_carries_its_own_event_id(
    client: httpx.AsyncClient, sim: SimControl
) -> None:
    _, call_id = await live_session(client, sim)
    await sim.drive(call_id, "tool-call", name="extract_profile")

    sent = [received["event"] for received in (await sim.call(call_id))["clientEvents"]]

    ids = [event.get("event_id") for event in sent]
    assert len(sent) >= 3  # session.update, the output, response.create
    assert all(isinstance(event_id, str) and event_id for event_id in ids)
    assert len(set(ids)) == len(ids)


# -- barge-in truncation ----------------------------------------------------------------------


async def test_a_turn_the_user_cut_off_is_marked_truncated(
    client: httpx.AsyncClient, sim: SimControl
) -> None:
    session_id, call_id = await live_session(client, sim, voice="marin")
    await sim.drive(call_id, "replies", text="Let me tell you a very long story.", deltaDelayMs=80)
    await sim.drive(call_id, "user", text="Tell me a story.", waitForResponse=False)
    await trio.sleep(0.2)  # some of the answer plays

    await sim.drive(call_id, "user", text="Stop.")  # the user barges in

    entries = await wait_until(lambda: truncated_entries(client, session_id))
    (cut,) = entries
    assert cut["role"] == "assistant"
    assert cut["truncated"] is True
    assert isinstance(cut["audioEndMs"], int)
    transcript = (await session_state(client, session_id))["transcript"]
    assert [e for e in transcript if "truncated" in e] == [cut]  # the others say nothing


async def truncated_entries(client: httpx.AsyncClient, session_id: str) -> list[Any] | None:
    entries = (await session_state(client, session_id))["transcript"]
    return [e for e in entries if e.get("truncated")] or None


# -- calls made while the sideband was away --------------------------------------------------


async def test_a_call_made_during_an_outage_is_answered_once_after_the_reconnect(
    start_server: Any, sim: SimControl, counting: CountingPlugin
) -> None:
    # Reconnects come half a second after a drop: long enough for the model to call a tool
    # while no socket is open.
    url = await start_with(
        start_server,
        counting,
        sideband_reconnect_backoff_seconds=1.0,
        sideband_reconnect_max_backoff_seconds=1.0,
    )
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        session_id, call_id = await live_session(client, sim)
        await sim.drive(call_id, "drop")
        missed = await sim.drive(call_id, "tool-call", name="count", wait=False)
        await wait_until(lambda: sockets_opened(sim, call_id, 2))
        await wait_for_sideband(client, session_id, "connected")
        assert counting.runs == []  # nothing is replayed to the new socket

        # The user's next turn names the call as the item before it: the server asks for it.
        await sim.drive(call_id, "user", text="Did that work?")

        answered = await wait_until(lambda: outputs_for(sim, call_id, missed["callId"]))
        assert answered == [{"ok": True, "runs": 1}]
        retrieves = await sim.client_events(call_id, "conversation.item.retrieve")
        assert missed["itemId"] in [event["item_id"] for event in retrieves]
        await wait_until(lambda: sim.client_events(call_id, "response.create"))
        assert counting.runs == [{"call_id": missed["callId"]}]


async def test_an_item_upstream_does_not_have_is_asked_for_once(
    client: httpx.AsyncClient, sim: SimControl
) -> None:
    session_id, call_id = await live_session(client, sim)
    note = {
        "id": "item_note",
        "object": "realtime.item",
        "type": "message",
        "status": "completed",
        "role": "system",
        "content": [{"type": "input_text", "text": "A note."}],
    }
    added = checked(
        {
            "type": "conversation.item.added",
            "event_id": "event_a",
            "previous_item_id": "item_ghost",
            "item": note,
        },
        {
            "type": "conversation.item.done",
            "event_id": "event_b",
            "previous_item_id": "item_ghost",
            "item": note,
        },
    )

    for event in added:
        await sim.drive(call_id, "send", event=event)

    view = await wait_until(lambda: refused_retrieve(client, session_id))
    assert view["sideband"]["state"] == "connected"
    retrieves = await sim.client_events(call_id, "conversation.item.retrieve")
    assert [event["item_id"] for event in retrieves] == ["item_ghost"]  # asked once


async def refused_retrieve(client: httpx.AsyncClient, session_id: str) -> dict[str, Any] | None:
    view = await session_state(client, session_id)
    error = view["sideband"].get("lastError") or ""
    return view if error.startswith("conversation.item.retrieve refused: item_not_found") else None


# -- liveness ---------------------------------------------------------------------------------


async def test_a_silent_peer_is_found_by_its_missing_pongs_and_reconnected(
    start_server: Any, simulator: RunningSimulator, sim: SimControl, nursery: trio.Nursery
) -> None:
    proxy = FreezableProxy(int(simulator.url.rsplit(":", 1)[1]))
    port = await nursery.start(proxy.run)
    url = await start_server(
        openai_base_url=f"http://127.0.0.1:{port}/v1",
        sideband_ping_interval_seconds=0.3,
        sideband_ping_timeout_seconds=0.3,
        sideband_connect_timeout_seconds=1,
        **FAST_RECONNECTS,
    )
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        session_id, call_id = await live_session(client, sim)
        proxy.freeze()  # the path to upstream goes silent; no socket closes

        view = await wait_until(lambda: not_connected(client, session_id))
        proxy.thaw()

        assert view["sideband"]["state"] == "reconnecting"
        await wait_for_sideband(client, session_id, "connected")
        assert len((await sim.call(call_id))["sockets"]) >= 2


async def not_connected(client: httpx.AsyncClient, session_id: str) -> dict[str, Any] | None:
    view = await session_state(client, session_id)
    return view if view["sideband"]["state"] != "connected" else None


# -- hanging up -------------------------------------------------------------------------------

HANGUP = "/v1/realtime/calls/{}/hangup"


@pytest.mark.parametrize("ending", ["delete", "close"])
async def test_ending_a_session_hangs_up_its_call(
    client: httpx.AsyncClient, sim: SimControl, ending: str
) -> None:
    session_id, call_id = await live_session(client, sim)

    if ending == "delete":
        ended = await client.delete(f"/session/{session_id}")
        assert ended.status_code == 204
    else:
        ended = await client.post("/session/close", json={"sessionId": session_id})
        assert ended.json() == {"sessionId": session_id, "closed": True}

    (hangup,) = await sim.requests(HANGUP.format(call_id))
    assert hangup["method"] == "POST"
    assert hangup["headers"]["authorization"].startswith("Bearer sk-")
    assert (await sim.call(call_id))["ended"] is True


async def test_a_call_already_hung_up_by_the_app_is_fine(
    client: httpx.AsyncClient, sim: SimControl
) -> None:
    session_id, call_id = await live_session(client, sim)
    await sim.drive(call_id, "end")  # the app hung up first

    ended = await client.delete(f"/session/{session_id}")

    assert ended.status_code == 204
    assert len(await sim.requests(HANGUP.format(call_id))) == 1  # answered 404, not retried


async def test_an_idle_session_hangs_up_its_call(start_server: Any, sim: SimControl) -> None:
    url = await start_server(session_idle_ttl_seconds=0.5)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        session_id, call_id = await live_session(client, sim)

        await wait_until(lambda: sim.requests(HANGUP.format(call_id)))

        assert (await client.get(f"/session/{session_id}")).status_code == 404


async def test_hanging_up_can_be_turned_off(start_server: Any, sim: SimControl) -> None:
    url = await start_server(hangup_on_session_end=False)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        session_id, call_id = await live_session(client, sim)

        assert (await client.delete(f"/session/{session_id}")).status_code == 204

        assert await sim.requests(HANGUP.format(call_id)) == []
        assert (await sim.call(call_id))["ended"] is False


async def test_a_server_shutting_down_does_not_hang_up(
    start_server: Any, simulator: RunningSimulator, sim: SimControl, nursery: trio.Nursery
) -> None:
    from realtime_trio.serve import serve  # the server stopped here, not at teardown

    stop = trio.Event()
    done = trio.Event()
    settings = make_settings(openai_api_key=DEFAULT_API_KEY, openai_base_url=simulator.base_url)

    async def run(*, task_status: trio.TaskStatus[list[str]]) -> None:
        try:
            await serve(settings, shutdown_trigger=stop.wait, task_status=task_status)
        finally:
            done.set()

    url = (await nursery.start(run))[0]
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        _, call_id = await live_session(client, sim)
    stop.set()
    await done.wait()

    assert await sim.requests(HANGUP.format(call_id)) == []
    assert (await sim.call(call_id))["ended"] is False
