"""The simulator at the API's edges: expiry, sockets that fail, voice-started responses, refusals,
barge-in truncation, the app's own events and hang-up, over real sockets.

Every server event a test client receives is checked against the SDK's types as it arrives (see
`test_simulator_calls.Sideband.next`); each test asserts the events exactly as they cross the wire.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, wrap_client_stream

from realtime_trio import cli
from realtime_trio.simulator import DEFAULT_API_KEY, RunningSimulator, SimulatorState, run_simulator
from realtime_trio.simulator.calls import expiry_message
from test_simulator_calls import (
    AUTH,
    CALL_NOT_FOUND,
    TRANSCRIBED,
    WAIT,
    checked_server_event,
    create_call,
    handshake,
    mint,
    rejection,
    sideband,
    types,
)

PLAIN = {"type": "realtime", "audio": {"output": {"voice": "marin"}}}  # nothing transcribed


@pytest.fixture
async def http(simulator: RunningSimulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=simulator.url, timeout=WAIT) as client:
        yield client


async def new_call(http: httpx.AsyncClient, session: dict[str, Any] | None = None) -> str:
    return await create_call(http, await mint(http, session or PLAIN))


@asynccontextmanager
async def raw_socket(simulator: RunningSimulator, call_id: str) -> AsyncIterator[Any]:
    """An accepted sideband connection whose first frame is not read (see `sideband`)."""
    host, port, netloc, resource, headers = handshake(simulator, call_id, DEFAULT_API_KEY)
    with trio.fail_after(WAIT):
        stream = await trio.open_tcp_stream(host, port)
    async with stream, trio.open_nursery() as nursery:
        with trio.fail_after(WAIT):
            ws = await wrap_client_stream(nursery, stream, netloc, resource, extra_headers=headers)
        try:
            yield ws
        finally:
            with trio.fail_after(WAIT):
                await ws.aclose()


async def closing(ws: WebSocketConnection) -> tuple[list[dict[str, Any]], int, str | None]:
    """The events read until the server closes, and the close's code and reason as seen."""
    events = []
    with trio.fail_after(WAIT):
        while True:
            try:
                events.append(checked_server_event(json.loads(await ws.get_message())))
            except ConnectionClosed as closed:
                return events, closed.reason.code, closed.reason.reason


async def drive(http: httpx.AsyncClient, call_id: str, action: str, **body: Any) -> Any:
    answer = await http.post(f"/_sim/calls/{call_id}/{action}", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def sim_call(http: httpx.AsyncClient, call_id: str) -> dict[str, Any]:
    answer = await http.get(f"/_sim/calls/{call_id}")
    assert answer.status_code == 200
    result: dict[str, Any] = answer.json()
    return result


def error(code: str | None, message: str, *, param: str | None, event_id: str | None) -> Any:
    return {"type": "invalid_request_error", "code": code, "message": message, "param": param,
            "event_id": event_id}  # fmt: skip


# -- 1. the maximum call duration ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "minutes"), [(3600, "60"), (5400, "90"), (90, "1.5"), (1.5, "0.025")]
)
def test_the_expiry_words_name_the_minutes_without_trailing_zeros(
    seconds: float, minutes: str
) -> None:
    assert expiry_message(seconds) == f"Your session hit the maximum duration of {minutes} minutes."


@pytest.mark.parametrize("seconds", [0, -1, float("inf"), float("nan")])
def test_the_maximum_duration_is_positive_and_finite(seconds: float) -> None:
    with pytest.raises(ValueError, match="max_call_seconds"):
        SimulatorState(max_call_seconds=seconds)


def test_the_command_takes_a_maximum_call_duration() -> None:
    args = cli._parser().parse_args(["simulate", "--max-call-seconds", "90"])
    assert args.max_call_seconds == 90.0
    assert cli._parser().parse_args(["simulate"]).max_call_seconds == 3600.0


async def test_a_call_expires_at_its_maximum_duration(nursery: trio.Nursery) -> None:
    state = SimulatorState(max_call_seconds=1.5)
    simulator: RunningSimulator = await nursery.start(partial(run_simulator, state=state))
    async with httpx.AsyncClient(base_url=simulator.url, timeout=WAIT) as http:
        call_id = await new_call(http)
        call = state.calls[call_id]
        async with raw_socket(simulator, call_id) as ws:
            events, code, reason = await closing(ws)
        hangup = await http.post(f"/v1/realtime/calls/{call_id}/hangup", headers=AUTH)
        late = await http.post(f"/_sim/calls/{call_id}/user", json={"text": "Hello?"})
        listed = (await http.get(f"/_sim/calls/{call_id}")).json()

    words = "Your session hit the maximum duration of 0.025 minutes."
    assert types(events) == ["session.created", "error"]
    assert events[1]["error"] == error("session_expired", words, param=None, event_id=None)
    assert (code, reason) == (1001, words)
    with trio.fail_after(WAIT):
        assert await call.wait_for_socket_closed(1) == 1001
    assert (call.ended, call.end_reason) == (True, "expired")
    assert (listed["ended"], listed["endReason"]) == (True, "expired")
    assert listed["expiresAt"] == listed["createdAt"] + 1.5
    assert (await rejection(simulator, call_id, DEFAULT_API_KEY)).body == CALL_NOT_FOUND
    assert hangup.status_code == 404
    assert hangup.json()["error"]["code"] == "call_not_found"
    assert late.status_code == 409


async def test_expire_ends_a_call_now_as_its_maximum_duration_would(
    http: httpx.AsyncClient, simulator: RunningSimulator
) -> None:
    call_id = await new_call(http)
    async with sideband(simulator, call_id) as first, sideband(simulator, call_id) as second:
        expired = await drive(http, call_id, "expire")
        seen = [await closing(first.ws), await closing(second.ws)]
    again = await http.post(f"/_sim/calls/{call_id}/expire")

    words = "Your session hit the maximum duration of 60 minutes."
    assert expired == {"callId": call_id, "ended": True, "closedSockets": 2}
    for events, code, reason in seen:
        assert types(events) == ["error"]
        assert events[0]["error"] == error("session_expired", words, param=None, event_id=None)
        assert (code, reason) == (1001, words)
    call = (await http.get(f"/_sim/calls/{call_id}")).json()
    assert call["endReason"] == "expired"
    assert [s["closeCode"] for s in call["sockets"]] == [1001, 1001]
    assert again.status_code == 409
    assert (await rejection(simulator, call_id, DEFAULT_API_KEY)).body == CALL_NOT_FOUND


async def test_expire_takes_no_body(http: httpx.AsyncClient) -> None:
    call_id = await new_call(http)
    answer = await http.post(f"/_sim/calls/{call_id}/expire", json={"now": True})

    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "now"


# -- 2. sockets that close as soon as they open --------------------------------------------------


async def test_armed_sockets_close_right_after_opening(
    http: httpx.AsyncClient, simulator: RunningSimulator
) -> None:
    call_id = await new_call(http)
    armed = await drive(
        http, call_id, "socket-faults", closeCode=1011, reason="upstream hiccup", times=2
    )
    seen = []
    for _ in range(2):
        async with raw_socket(simulator, call_id) as ws:
            seen.append(await closing(ws))
    async with sideband(simulator, call_id) as client:
        assert client.seen[0]["type"] == "session.created"

    assert armed == {"socketFaults": 2}
    assert seen == [([], 1011, "upstream hiccup")] * 2  # accepted, then closed with no event
    call = await sim_call(http, call_id)
    assert call["socketsOpened"] == 3
    assert call["socketFaults"] == 0
    assert [(s["faulted"], s["closeCode"]) for s in call["sockets"]] == [
        (True, 1011),
        (True, 1011),
        (False, 1000),
    ]
    assert not call["ended"]


async def test_an_abrupt_socket_fault_sends_no_close_frame(
    http: httpx.AsyncClient, simulator: RunningSimulator
) -> None:
    call_id = await new_call(http)
    assert await drive(http, call_id, "socket-faults", abrupt=True) == {"socketFaults": 1}
    async with raw_socket(simulator, call_id) as ws:
        events, code, _ = await closing(ws)

    assert (events, code) == ([], 1006)
    with trio.fail_after(WAIT):
        assert await simulator.state.calls[call_id].wait_for_socket_closed(1) == 1006


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"closeCode": 1006}, None),
        ({"closeCode": 2500}, None),
        ({"times": 0}, "times"),
        ({"reason": "x" * 124}, None),
        ({"code": 1011}, "code"),
    ],
)
async def test_a_bad_socket_fault_is_a_400(
    http: httpx.AsyncClient, body: dict[str, Any], param: str | None
) -> None:
    call_id = await new_call(http)
    answer = await http.post(f"/_sim/calls/{call_id}/socket-faults", json=body)

    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == param


# -- 3. voice activity starts responses ----------------------------------------------------------

USER_TURN = [
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "input_audio_buffer.committed",
    "conversation.item.added",
    "conversation.item.done",
]


async def test_voice_activity_plays_the_queued_behaviours_in_order(
    http: httpx.AsyncClient, simulator: RunningSimulator
) -> None:
    call_id = await new_call(http)
    assert await drive(
        http, call_id, "replies", toolCall={"name": "lookup_order", "arguments": {"n": "1234"}}
    ) == {"queued": 1}
    assert await drive(http, call_id, "replies", text="It shipped yesterday.") == {"queued": 2}
    listed = (await sim_call(http, call_id))["queuedReplies"]
    async with sideband(simulator, call_id) as client:
        first = await drive(http, call_id, "user", text="Where is my order?")
        called = await client.until("response.done")
        second = await drive(http, call_id, "user", text="And when?")
        said = await client.until("response.done")
        await drive(http, call_id, "user", text="Thanks.")
        default = await client.until("response.done")

    assert listed == [
        {"toolCall": {"name": "lookup_order", "arguments": {"n": "1234"}}, "deltaDelayMs": 0},
        {"text": "It shipped yesterday.", "deltaDelayMs": 0},
    ]
    assert set(first) == {"itemId", "responseId", "callId"}
    assert types(called) == [
        *USER_TURN,
        "response.created",
        "rate_limits.updated",
        "response.output_item.added",
        "conversation.item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
    ]
    assert called[8]["previous_item_id"] == first["itemId"]
    arguments = called[10]
    assert (arguments["call_id"], arguments["name"], arguments["arguments"]) == (
        first["callId"],
        "lookup_order",
        '{"n":"1234"}',
    )
    assert called[-1]["response"]["id"] == first["responseId"]
    assert set(second) == {"itemId", "responseId"}
    assert said[-1]["response"]["output"][0]["content"] == [
        {"type": "output_audio", "transcript": "It shipped yesterday."}
    ]
    assert types(said)[: len(USER_TURN) + 1] == [*USER_TURN, "response.created"]
    assert default[-1]["response"]["output"][0]["content"] == [
        {"type": "output_audio", "transcript": "Sure, I can help with that."}
    ]
    assert (await sim_call(http, call_id))["queuedReplies"] == []


async def test_a_second_response_is_refused_while_the_voice_started_one_plays(
    http: httpx.AsyncClient, simulator: RunningSimulator
) -> None:
    call_id = await new_call(http)
    await drive(http, call_id, "replies", text="Let me think about that.", deltaDelayMs=300)
    async with sideband(simulator, call_id) as client:
        started = await drive(http, call_id, "user", text="Hello?", waitForResponse=False)
        assert simulator.state.calls[call_id].active_response is not None
        await client.send({"type": "response.create", "event_id": "again"})
        events = await client.until("response.done")
        await client.send({"type": "input_audio_buffer.clear", "event_id": "after"})
        after = await client.next()

    refused = [e for e in events if e["type"] == "error"]
    assert set(started) == {"itemId", "responseId"}
    assert len(refused) == 1
    assert refused[0]["error"] == error(
        "conversation_already_has_active_response",
        f"Conversation already has an active response in progress: {started['responseId']}. "
        "Wait until the response is finished before creating a new one.",
        param=None,
        event_id="again",
    )
    # the refused response.create started nothing: one response.created, one response.done
    assert types(events).count("response.created") == 1
    assert events[-1]["response"]["id"] == started["responseId"]
    assert events[-1]["response"]["status"] == "completed"
    assert after["type"] == "input_audio_buffer.cleared"  # no response.done followed the refusal


async def test_without_interrupting_a_user_turn_starts_no_second_response(
    http: httpx.AsyncClient, simulator: RunningSimulator
) -> None:
    session = {**PLAIN, "audio": {"input": {"turn_detection": {"type": "server_vad",
               "interrupt_response": False}}}}  # fmt: skip
    call_id = await new_call(http, session)
    call = simulator.state.calls[call_id]
    await drive(http, call_id, "replies", text="One two three four five six.", deltaDelayMs=400)
    async with sideband(simulator, call_id) as client:
        first = await drive(http, call_id, "user", text="Tell me.", waitForResponse=False)
        await client.until("response.output_audio_transcript.delta")
        second = await drive(http, call_id, "user", text="Go on.")
        events = await client.until("response.done")

    assert set(first) == {"itemId", "responseId"}
    assert set(second) == {"itemId"}  # the SDK: it "may fail to create a response"
    assert "response.created" not in types(events)
    assert events[-1]["response"]["status"] == "completed"
    assert call.active_response is None


async def test_a_client_commit_starts_no_response(
    http: httpx.AsyncClient, simulator: RunningSimulator
) -> None:
    call_id = await new_call(http)
    pcm_200ms = "A" * (24_000 * 2 // 5 * 4 // 3)
    async with sideband(simulator, call_id) as client:
        await client.send({"type": "input_audio_buffer.append", "audio": pcm_200ms})
        await client.send({"type": "input_audio_buffer.commit"})
        committed = [await client.next() for _ in range(3)]
        await client.send({"type": "input_audio_buffer.clear"})
        cleared = await client.next()

    assert types(committed) == USER_TURN[2:]
    assert cleared["type"] == "input_audio_buffer.cleared"  # no response.created between
    assert simulator.state.calls[call_id].responses == {}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, None),
        ({"text": "Hi.", "toolCall": {"name": "f"}}, None),
        ({"toolCall": {"name": "f", "args": {}}}, "toolCall.args"),
        ({"toolCall": {"arguments": {}}}, "toolCall.name"),
        ({"text": "Hi.", "deltaDelayMs": -1}, "deltaDelayMs"),
    ],
)
async def test_a_bad_queued_behaviour_is_a_400(
    http: httpx.AsyncClient, body: dict[str, Any], param: str | None
) -> None:
    call_id = await new_call(http)
    answer = await http.post(f"/_sim/calls/{call_id}/replies", json=body)

    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == param


async def test_the_user_control_refuses_unknown_keys(http: httpx.AsyncClient) -> None:
    call_id = await new_call(http)
    answer = await http.post(f"/_sim/calls/{call_id}/user", json={"text": "Hi", "wait": False})

    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "wait"


# -- 4. a function call output must answer a function call ---------------------------------------


def output_item(call_id: str) -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call_id, "output": '{"ok":true}'}


async def test_an_output_for_no_function_call_of_the_conversation_is_refused(
    http: httpx.AsyncClient, simulator: RunningSimulator
) -> None:
    call_id = await new_call(http)
    call = simulator.state.calls[call_id]
    async with sideband(simulator, call_id) as client:
        await client.send(
            {"type": "conversation.item.create", "event_id": "fco_1", "item": output_item("x")}
        )
        refused = await client.next()
        tool = await drive(http, call_id, "tool-call", name="noop", wait=False)
        await client.until("response.done")
        await client.send({"type": "conversation.item.create", "item": output_item(tool["callId"])})
        accepted = [await client.next(), await client.next()]

    assert refused["error"] == error(
        "invalid_value",
        "No tool call found for function call output with call_id x.",
        param="item.call_id",
        event_id="fco_1",
    )
    assert types(accepted) == ["conversation.item.added", "conversation.item.done"]
    assert [item["type"] for item in call.items] == ["function_call", "function_call_output"]
    assert [r.valid for r in call.client_events] == [False, True]


# -- 5. barge-in: cancelled, cleared, truncated --------------------------------------------------


async def test_a_barge_in_truncates_the_audio_the_user_did_not_hear(
    http: httpx.AsyncClient, simulator: RunningSimulator
) -> None:
    call_id = await new_call(http)
    call = simulator.state.calls[call_id]
    said: dict[str, Any] = {}

    async def assistant() -> None:
        said.update(
            await drive(
                http, call_id, "assistant", text="One two three four five six.", deltaDelayMs=1500
            )
        )

    async with sideband(simulator, call_id) as client, trio.open_nursery() as nursery:
        nursery.start_soon(assistant)
        await client.until("response.output_audio_transcript.delta")
        await client.until("response.output_audio_transcript.delta")  # "One two " has played
        user = await drive(http, call_id, "user", text="Wait.")
        events = await client.until("response.done")
        events += await client.until("response.done")
        cut = events[3]["item"]["id"]
        await client.send({"type": "conversation.item.retrieve", "item_id": cut})
        retrieved = await client.next()

    assert said["itemId"] == cut
    assert types(events)[:10] == [
        "input_audio_buffer.speech_started",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
        "output_audio_buffer.cleared",
        "conversation.item.truncated",
        *USER_TURN[1:3],
    ]
    cancelled = events[5]["response"]
    assert (cancelled["id"], cancelled["status"]) == (said["responseId"], "cancelled")
    # response.done holds what was generated; the truncation keeps what was heard
    assert cancelled["output"][0]["content"] == [
        {"type": "output_audio", "transcript": "One two three four "}
    ]
    assert events[6]["response_id"] == said["responseId"]
    truncated = events[7]
    assert (truncated["item_id"], truncated["content_index"], truncated["audio_end_ms"]) == (
        cut,
        0,
        len("One two ") * 60,
    )
    assert retrieved["item"]["content"] == [{"type": "output_audio", "transcript": "One two "}]
    assert call.items[0]["content"] == retrieved["item"]["content"]
    assert events[-1]["response"]["id"] == user["responseId"]  # then voice activity answers


async def test_a_barge_in_on_a_function_call_sends_its_partial_arguments(
    http: httpx.AsyncClient, simulator: RunningSimulator
) -> None:
    call_id = await new_call(http)
    arguments = {"order_number": "1234", "note": "leave it at the back door"}
    called: dict[str, Any] = {}

    async def tool_call() -> None:
        body = {"name": "lookup_order", "arguments": arguments, "deltaDelayMs": 1500}
        called.update(await drive(http, call_id, "tool-call", **body, wait=False))

    async with sideband(simulator, call_id) as client, trio.open_nursery() as nursery:
        nursery.start_soon(tool_call)
        first = (await client.until("response.function_call_arguments.delta"))[-1]
        await drive(http, call_id, "user", text="Never mind.")
        events = await client.until("response.done")
        events += await client.until("response.done")  # voice activity's answer

    assert types(events)[:8] == [
        "input_audio_buffer.speech_started",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
        *USER_TURN[1:4],
    ]  # no audio: nothing cleared, nothing truncated
    done = events[1]
    assert (done["call_id"], done["name"], done["arguments"]) == (
        called["callId"],
        "lookup_order",
        first["delta"],
    )
    assert first["delta"] == json.dumps(arguments, separators=(",", ":"))[:16]
    item = events[2]["item"]
    assert (item["status"], item["arguments"]) == ("incomplete", first["delta"])
    cancelled = events[4]["response"]
    assert (cancelled["status"], cancelled["status_details"]) == (
        "cancelled",
        {"type": "cancelled", "reason": "turn_detected"},
    )
    assert cancelled["output"] == [item]


async def test_a_client_truncation_keeps_the_words_heard_and_no_more_than_there_is(
    http: httpx.AsyncClient, simulator: RunningSimulator
) -> None:
    call_id = await new_call(http)
    async with sideband(simulator, call_id) as client:
        said = await drive(http, call_id, "assistant", text="Hello there.")
        await client.until("response.done")
        too_far = {"item_id": said["itemId"], "content_index": 0, "audio_end_ms": 12 * 60 + 1}
        await client.send({"type": "conversation.item.truncate", "event_id": "t1", **too_far})
        refused = await client.next()
        await client.send({**too_far, "type": "conversation.item.truncate", "audio_end_ms": 300})
        truncated = await client.next()
        await client.send({"type": "conversation.item.retrieve", "item_id": said["itemId"]})
        retrieved = await client.next()

    assert refused["error"] == error(
        "invalid_value",
        "Audio content of 720ms is shorter than 721ms.",
        param="audio_end_ms",
        event_id="t1",
    )
    assert truncated["audio_end_ms"] == 300
    assert retrieved["item"]["content"] == [{"type": "output_audio", "transcript": "Hello"}]


# -- 6. the app's own client events --------------------------------------------------------------


async def test_the_app_starts_an_out_of_band_function_call(
    http: httpx.AsyncClient, simulator: RunningSimulator
) -> None:
    call_id = await new_call(http)
    call = simulator.state.calls[call_id]
    await drive(http, call_id, "replies", toolCall={"name": "classify", "arguments": "{}"})
    event = {"type": "response.create", "event_id": "app_1",
             "response": {"conversation": "none", "metadata": {"by": "app"}}}  # fmt: skip
    async with sideband(simulator, call_id) as client:
        started = await drive(http, call_id, "app", event=event)
        events = await client.until("response.done")
        await client.send(
            {"type": "conversation.item.create", "event_id": "o1",
             "item": output_item(started["callId"])}
        )  # fmt: skip
        refused = await client.next()

    assert started == {
        "accepted": True,
        "error": None,
        "responseId": events[0]["response"]["id"],
        "callId": started["callId"],
    }
    assert types(events) == [
        "response.created",
        "rate_limits.updated",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.done",
    ]  # no conversation.item.*: it is not part of the conversation
    done = events[-1]["response"]
    assert (done["conversation_id"], done["metadata"]) == (None, {"by": "app"})
    assert events[4]["call_id"] == started["callId"]
    assert call.items == []
    assert refused["error"]["param"] == "item.call_id"  # its output has no call to answer
    listed = await sim_call(http, call_id)
    assert [e["event"] for e in listed["appEvents"]] == [event]
    assert [(e["socketId"], e["valid"]) for e in listed["appEvents"]] == [(0, True)]
    assert [e["event"]["event_id"] for e in listed["clientEvents"]] == ["o1"]


async def test_the_apps_refused_events_are_answered_on_the_sideband(
    http: httpx.AsyncClient, simulator: RunningSimulator
) -> None:
    call_id = await new_call(http)
    await drive(http, call_id, "replies", text="Still talking.", deltaDelayMs=500)
    async with sideband(simulator, call_id) as client:
        busy = await drive(http, call_id, "app", event={"type": "response.create"})
        second = await drive(
            http, call_id, "app", event={"type": "response.create", "event_id": "app_2"}
        )
        bogus = await drive(http, call_id, "app", event={"type": "nope", "event_id": "app_3"})
        events = await client.until("response.done")

    errors = [e["error"] for e in events if e["type"] == "error"]
    assert set(busy) == {"accepted", "error", "responseId"}
    assert second["accepted"] is False
    assert second["error"]["code"] == "conversation_already_has_active_response"
    assert bogus["accepted"] is False
    assert (bogus["error"]["param"], bogus["error"]["event_id"]) == ("type", "app_3")
    assert errors == [second["error"], bogus["error"]]
    assert [e["event_id"] for e in errors] == ["app_2", "app_3"]
    assert simulator.state.calls[call_id].client_events == []


@pytest.mark.parametrize(("body", "param"), [({}, "event"), ({"event": {}, "x": 1}, "x")])
async def test_a_bad_app_body_is_a_400(
    http: httpx.AsyncClient, body: dict[str, Any], param: str
) -> None:
    call_id = await new_call(http)
    answer = await http.post(f"/_sim/calls/{call_id}/app", json=body)

    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == param


# -- 7. refusing client events on purpose --------------------------------------------------------


async def test_an_armed_refusal_answers_the_next_events_of_its_type_with_an_error(
    http: httpx.AsyncClient, simulator: RunningSimulator
) -> None:
    call_id = await new_call(http)
    call = simulator.state.calls[call_id]
    before = dict(call.session)
    armed = await drive(
        http, call_id, "refuse", type="session.update", code="nope", message="Refused.",
        param="session",
    )  # fmt: skip
    update = {"type": "session.update", "session": {"type": "realtime", "instructions": "Hi."}}
    app = await drive(http, call_id, "app", event=update)
    left = (await sim_call(http, call_id))["refusals"]
    async with sideband(simulator, call_id) as client:
        await client.send({**update, "event_id": "su_1"})
        refused = await client.next()
        await client.send({**update, "event_id": "su_2"})
        updated = await client.next()

    assert armed == {"type": "session.update", "times": 1}
    assert app["accepted"] is True  # the app's events are not the sideband's
    assert left == {"session.update": 1}
    assert refused["error"] == error("nope", "Refused.", param="session", event_id="su_1")
    assert updated["type"] == "session.updated"
    assert [(r.event["event_id"], r.valid) for r in call.client_events] == [
        ("su_1", False),
        ("su_2", True),
    ]
    assert call.client_events[0].error == refused["error"]
    assert call.session == {**before, "instructions": "Hi."}
    assert (await sim_call(http, call_id))["refusals"] == {}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"type": "session.updat"}, None),
        ({"type": "session.update", "times": 0}, "times"),
        ({"type": "session.update", "status": 500}, "status"),
        ({"times": 1}, "type"),
    ],
)
async def test_a_bad_refusal_is_a_400(
    http: httpx.AsyncClient, body: dict[str, Any], param: str | None
) -> None:
    call_id = await new_call(http)
    answer = await http.post(f"/_sim/calls/{call_id}/refuse", json=body)

    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == param


# -- 8. hang-up ---------------------------------------------------------------------------------


async def test_hangup_needs_the_api_key_ends_the_call_and_is_recorded(
    http: httpx.AsyncClient, simulator: RunningSimulator
) -> None:
    call_id = await new_call(http, TRANSCRIBED)
    secret = simulator.state.calls[call_id].secret
    path = f"/v1/realtime/calls/{call_id}/hangup"
    async with sideband(simulator, call_id) as client:
        no_key = await http.post(path)
        by_secret = await http.post(path, headers={"Authorization": f"Bearer {secret}"})
        hung_up = await http.post(path, headers=AUTH)
        events, code, _ = await closing(client.ws)
    again = await http.post(path, headers=AUTH)
    unknown = await http.post("/v1/realtime/calls/rtc_unknown/hangup", headers=AUTH)
    recorded = (await http.get("/_sim/requests", params={"path": path})).json()["requests"]

    assert (no_key.status_code, by_secret.status_code) == (401, 401)
    assert (hung_up.status_code, hung_up.content) == (200, b"")
    assert (events, code) == ([], 1000)
    for gone, which in [(again, call_id), (unknown, "rtc_unknown")]:
        assert gone.status_code == 404
        assert gone.json() == {
            "error": {
                "message": f"No call found with id '{which}'.",
                "type": "invalid_request_error",
                "param": "call_id",
                "code": "call_not_found",
            }
        }
    assert [(r["method"], r["headers"]["authorization"][:10]) for r in recorded[2:]] == [
        ("POST", f"Bearer {DEFAULT_API_KEY[:3]}"),
        ("POST", f"Bearer {DEFAULT_API_KEY[:3]}"),
    ]
    assert len(recorded) == 4
    assert (await sim_call(http, call_id))["endReason"] == "ended"
    assert (await rejection(simulator, call_id, DEFAULT_API_KEY)).body == CALL_NOT_FOUND


# -- no replay, unknown items --------------------------------------------------------------------


async def test_what_happened_while_no_socket_was_open_is_not_replayed(
    http: httpx.AsyncClient, simulator: RunningSimulator
) -> None:
    call_id = await new_call(http)
    await drive(http, call_id, "user", text="Anyone there?")
    async with sideband(simulator, call_id) as client:
        await client.send({"type": "conversation.item.retrieve", "event_id": "r1",
                           "item_id": "item_missing"})  # fmt: skip
        missing = await client.next()

    assert types(client.seen) == ["session.created", "error"]
    assert missing["error"] == error(
        "item_not_found",
        "Error retrieving item: the item with id 'item_missing' does not exist.",
        param="item_id",
        event_id="r1",
    )
    assert len(simulator.state.calls[call_id].items) == 2  # the user's turn and the reply
