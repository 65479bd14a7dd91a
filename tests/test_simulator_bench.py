"""The simulator's benchmark routes over real sockets: `/blast`, tool call timings, `/_sim/trickle`.

Times in answers are `time.monotonic()` seconds, the clock of this very process, so they are
checked for their order only: no test here depends on how fast anything runs.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed
from wsproto import Connection, ConnectionType
from wsproto.events import TextMessage

from realtime_trio.simulator import RunningSimulator
from realtime_trio.simulator.frames import encode_text_frames, frame_texts
from realtime_trio.simulator.wire import WireTap
from test_simulator_calls import (
    TRANSCRIBED,
    WAIT,
    Sideband,
    checked_server_event,
    create_call,
    mint,
    sideband,
    types,
)

# One turn of the mix, each run of deltas collapsed to one entry.
MIX_TURN = [
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "input_audio_buffer.committed",
    "conversation.item.added",
    "conversation.item.input_audio_transcription.delta",
    "conversation.item.input_audio_transcription.completed",
    "conversation.item.done",
    "response.created",
    "response.output_item.added",
    "conversation.item.added",
    "response.content_part.added",
    "output_audio_buffer.started",
    "response.output_audio_transcript.delta",
    "response.output_audio_transcript.done",
    "response.content_part.done",
    "response.output_item.done",
    "conversation.item.done",
    "output_audio_buffer.stopped",
    "response.done",
    "rate_limits.updated",
]
MARKER = {"name": "bench_marker", "arguments": {"after": "blast"}}


@pytest.fixture
async def http(simulator: RunningSimulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=simulator.url, timeout=WAIT) as client:
        yield client


@pytest.fixture
async def call_id(http: httpx.AsyncClient) -> str:
    return await create_call(http, await mint(http, TRANSCRIBED))


@pytest.fixture
def raw_sends(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every chunk written through the wire tap as it is."""
    sizes: list[int] = []
    original = WireTap.send_raw

    async def counted(self: WireTap, websocket: Any, data: bytes) -> None:
        sizes.append(len(data))
        await original(self, websocket, data)

    monkeypatch.setattr(WireTap, "send_raw", counted)
    return sizes


async def receive_texts(client: Sideband, count: int) -> list[str]:
    """The next *count* frames as sent, each checked against the SDK's server events."""
    texts = []
    with trio.fail_after(WAIT):
        for _ in range(count):
            text = await client.ws.get_message()
            assert isinstance(text, str)
            checked_server_event(json.loads(text))
            texts.append(text)
    return texts


def collapsed(kinds: list[str]) -> list[str]:
    return [kind for i, kind in enumerate(kinds) if i == 0 or kinds[i - 1] != kind]


def check_mix(texts: list[str]) -> list[dict[str, Any]]:
    """Assert *texts* are whole turns of the mix (the last one maybe cut), as the API writes
    them, chaining into one coherent transcript; the events."""
    events = [json.loads(text) for text in texts]
    for text, event in zip(texts, events, strict=True):
        assert text.startswith('{"type":')
        assert json.dumps(event, separators=(",", ":")) == text  # compact
    assert len({event["event_id"] for event in events}) == len(events)

    turns: list[list[dict[str, Any]]] = []
    for event in events:
        if event["type"] == "input_audio_buffer.speech_started":
            turns.append([])
        turns[-1].append(event)
    for turn in turns[:-1]:
        kinds = types(turn)
        assert collapsed(kinds) == MIX_TURN
        assert 1 <= kinds.count("conversation.item.input_audio_transcription.delta") <= 4
        assert 20 <= kinds.count("response.output_audio_transcript.delta") <= 30
    last = collapsed(types(turns[-1]))
    assert last == MIX_TURN[: len(last)]

    previous = None  # the call had no items: the first turn starts the conversation
    for turn in turns[:-1]:
        user = turn[0]["item_id"]
        added = [e for e in turn if e["type"] == "conversation.item.added"]
        assert [(e["item"]["role"], e["previous_item_id"]) for e in added] == [
            ("user", previous),
            ("assistant", user),
        ]
        assistant = added[1]["item"]["id"]
        heard = "".join(e["delta"] for e in turn if e["type"].endswith("transcription.delta"))
        said = "".join(e["delta"] for e in turn if e["type"].endswith("transcript.delta"))
        assert heard
        assert said
        completed = next(e for e in turn if e["type"].endswith("transcription.completed"))
        assert completed["item_id"] == user
        assert completed["transcript"] == heard
        created = next(e for e in turn if e["type"] == "response.created")["response"]
        done = next(e for e in turn if e["type"] == "response.done")["response"]
        assert done["id"] == created["id"]
        assert done["status"] == "completed"
        assert done["usage"]["total_tokens"] > 0
        assert done["output"][0]["id"] == assistant
        assert done["output"][0]["content"][0]["transcript"] == said
        previous = assistant
    return events


async def test_a_blast_arrives_intact_then_its_marker_tool_call(
    http: httpx.AsyncClient, simulator: RunningSimulator, call_id: str, raw_sends: list[int]
) -> None:
    answer: dict[str, Any] = {}
    started = time.monotonic()

    async def blast() -> None:
        response = await http.post(
            f"/_sim/calls/{call_id}/blast", json={"count": 1000, "marker": MARKER}
        )
        assert response.status_code == 200, response.text
        answer.update(response.json())

    async with sideband(simulator, call_id) as client, trio.open_nursery() as nursery:
        nursery.start_soon(blast)
        texts = await receive_texts(client, 1000)
        marker = await client.until("response.done")
        arguments = next(e for e in marker if e["type"] == "response.function_call_arguments.done")
        await client.send(
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "function_call_output",
                    "call_id": arguments["call_id"],
                    "output": '{"ok":true}',
                },
            }
        )
        await client.send({"type": "response.create"})
    finished = time.monotonic()

    check_mix(texts)
    payload = sum(len(text.encode()) for text in texts)
    headers = sum(2 if len(text) < 126 else 4 for text in texts)
    assert {key: answer[key] for key in ("count", "frames", "bytes", "wireBytes")} == {
        "count": 1000,
        "frames": 1000,
        "bytes": payload,
        "wireBytes": payload + headers,
    }
    # through the wire tap in chunks, which the marker's frames follow
    assert raw_sends[0] >= 256 * 1024
    assert answer["wireBytes"] in itertools.accumulate(raw_sends)
    # Exactly 1000: the marker's response comes right after.
    assert marker[0]["type"] == "response.created"
    assert marker[0]["response"]["id"] == answer["marker"]["responseId"]
    assert arguments["name"] == MARKER["name"]
    assert json.loads(arguments["arguments"]) == MARKER["arguments"]
    result = answer["marker"]
    assert result["output"] == '{"ok":true}'
    assert result["responseCreated"] is True
    timings = result["timings"]
    assert started <= answer["firstSentAt"] <= answer["lastSentAt"]
    assert answer["lastSentAt"] <= timings["argumentsDoneSentAt"]
    assert timings["argumentsDoneSentAt"] <= timings["responseDoneSentAt"]
    assert timings["responseDoneSentAt"] <= timings["outputReceivedAt"]
    assert timings["outputReceivedAt"] <= timings["responseCreateReceivedAt"] <= finished
    # wire-only: the conversation holds the marker's items, none of the blast's
    call = simulator.state.calls[call_id]
    assert [item["type"] for item in call.items][:2] == ["function_call", "function_call_output"]


async def test_a_blast_without_the_wire_tap_goes_frame_by_frame(
    http: httpx.AsyncClient,
    simulator: RunningSimulator,
    call_id: str,
    raw_sends: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(WireTap, "attach", lambda self, send: None)  # as under another server
    async with sideband(simulator, call_id) as client:
        response = await http.post(f"/_sim/calls/{call_id}/blast", json={"count": 300})
        texts = await receive_texts(client, 300)
        await http.post(f"/_sim/calls/{call_id}/end")
        with pytest.raises(ConnectionClosed), trio.fail_after(WAIT):
            await client.ws.get_message()

    check_mix(texts)
    answer = response.json()
    payload = sum(len(text.encode()) for text in texts)
    assert answer["frames"] == 300
    assert answer["bytes"] == payload
    assert answer["wireBytes"] == payload + sum(2 if len(t) < 126 else 4 for t in texts)
    assert answer["firstSentAt"] <= answer["lastSentAt"]
    assert answer["marker"] is None
    assert raw_sends == []


async def test_a_tool_call_reports_when_its_frames_went_and_the_answers_came(
    http: httpx.AsyncClient, simulator: RunningSimulator, call_id: str
) -> None:
    answer: dict[str, Any] = {}

    async def tool_call() -> None:
        response = await http.post(f"/_sim/calls/{call_id}/tool-call", json=MARKER)
        answer.update(response.json())

    async with sideband(simulator, call_id) as client, trio.open_nursery() as nursery:
        nursery.start_soon(tool_call)
        await answer_tool_calls(client, count=1)

    timings = answer["timings"]
    assert set(timings) == {
        "argumentsDoneSentAt",
        "responseDoneSentAt",
        "outputReceivedAt",
        "responseCreateReceivedAt",
    }
    assert (
        timings["argumentsDoneSentAt"]
        <= timings["responseDoneSentAt"]
        <= timings["outputReceivedAt"]
        <= timings["responseCreateReceivedAt"]
    )
    unanswered = (
        await http.post(f"/_sim/calls/{call_id}/tool-call", json={**MARKER, "wait": False})
    ).json()
    assert unanswered["timings"]["outputReceivedAt"] is None
    assert unanswered["timings"]["responseCreateReceivedAt"] is None


async def answer_tool_calls(client: Sideband, *, count: float = float("inf")) -> None:
    """Play the server's part: once a response with a function call is done, send the call's
    output and a `response.create`."""
    answered = 0
    while answered < count:
        event = json.loads(await client.ws.get_message())
        if event["type"] != "response.done":
            continue
        for item in event["response"]["output"]:
            if item["type"] == "function_call":
                output = {
                    "type": "function_call_output",
                    "call_id": item["call_id"],
                    "output": "{}",
                }
                await client.send({"type": "conversation.item.create", "item": output})
                await client.send({"type": "response.create"})
                answered += 1


async def test_a_trickle_spreads_the_mix_over_the_calls(
    http: httpx.AsyncClient, simulator: RunningSimulator
) -> None:
    first, second = [await create_call(http, await mint(http, TRANSCRIBED)) for _ in range(2)]
    async with sideband(simulator, first) as one, sideband(simulator, second) as two:
        response = await http.post("/_sim/trickle", json={"seconds": 0.3, "eventsPerSecond": 100})
        answer = response.json()
        received = [await receive_texts(one, 15), await receive_texts(two, 15)]

    assert response.status_code == 200
    assert answer == {
        "calls": 2,
        "eventsSent": 30,
        "probesSent": 0,
        "probesAnswered": 0,
        "latencies": [],
        "responseCreateLatencies": [],
    }
    events = [check_mix(texts) for texts in received]
    assert events[0][0]["item_id"] != events[1][0]["item_id"]  # each call its own ids


async def test_a_trickle_probes_the_calls_with_tool_calls(
    http: httpx.AsyncClient, simulator: RunningSimulator
) -> None:
    first, second = [await create_call(http, await mint(http, TRANSCRIBED)) for _ in range(2)]
    body = {
        "seconds": 0.5,
        "eventsPerSecond": 20,
        "probe": {"name": "bench_noop", "arguments": {}},
        "probesPerSecond": 4,
        "timeoutSeconds": WAIT,
    }
    async with (
        sideband(simulator, first) as one,
        sideband(simulator, second) as two,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(answer_tool_calls, one)
        nursery.start_soon(answer_tool_calls, two)
        response = await http.post("/_sim/trickle", json=body, timeout=2 * WAIT)
        nursery.cancel_scope.cancel()

    answer = response.json()
    assert response.status_code == 200
    assert {key: answer[key] for key in ("calls", "eventsSent", "probesSent")} == {
        "calls": 2,
        "eventsSent": 10,
        "probesSent": 2,
    }
    assert answer["probesAnswered"] == 2
    assert len(answer["latencies"]) == len(answer["responseCreateLatencies"]) == 2
    for to_output, to_create in zip(
        answer["latencies"], answer["responseCreateLatencies"], strict=True
    ):
        assert 0 <= to_output <= to_create
    for call_id in (first, second):
        names = [i.get("name") for i in simulator.state.calls[call_id].items]
        assert names.count("bench_noop") == 1


async def test_a_trickle_with_no_live_call_sends_nothing(http: httpx.AsyncClient) -> None:
    response = await http.post("/_sim/trickle", json={"seconds": 0.01, "eventsPerSecond": 10})

    assert response.status_code == 200
    assert response.json()["calls"] == 0
    assert response.json()["eventsSent"] == 0


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/_sim/calls/{call}/blast", {}),
        ("/_sim/calls/{call}/blast", {"count": 0}),
        ("/_sim/calls/{call}/blast", {"count": "10"}),
        ("/_sim/calls/{call}/blast", {"count": 10, "bogus": 1}),
        ("/_sim/calls/{call}/blast", {"count": 10, "marker": {"arguments": {}}}),
        ("/_sim/calls/{call}/blast", {"count": 10, "marker": {"name": "x", "arguments": "{}"}}),
        ("/_sim/calls/{call}/blast", {"count": 10, "timeoutSeconds": 0}),
        ("/_sim/calls/{call}/blast", {"count": 10, "socketId": "1"}),
        ("/_sim/trickle", {}),
        ("/_sim/trickle", {"seconds": 0, "eventsPerSecond": 10}),
        ("/_sim/trickle", {"seconds": 1, "eventsPerSecond": 0}),
        ("/_sim/trickle", {"seconds": 1, "eventsPerSecond": 10, "probesPerSecond": -1}),
        ("/_sim/trickle", {"seconds": 1, "eventsPerSecond": 10, "probe": {"name": 5}}),
        ("/_sim/trickle", {"seconds": 1, "eventsPerSecond": 10, "timeoutSeconds": -1}),
        ("/_sim/trickle", {"seconds": 1, "eventsPerSecond": 10, "bogus": True}),
    ],
)
async def test_bad_bodies_are_refused(
    http: httpx.AsyncClient, call_id: str, path: str, body: dict[str, Any]
) -> None:
    response = await http.post(path.format(call=call_id), json=body)

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_a_blast_needs_a_live_call_with_an_open_socket(
    http: httpx.AsyncClient, simulator: RunningSimulator, call_id: str
) -> None:
    unknown = await http.post("/_sim/calls/rtc_nope/blast", json={"count": 1})
    no_socket = await http.post(f"/_sim/calls/{call_id}/blast", json={"count": 1})
    async with sideband(simulator, call_id):
        wrong_socket = await http.post(
            f"/_sim/calls/{call_id}/blast", json={"count": 1, "socketId": 7}
        )
    await http.post(f"/_sim/calls/{call_id}/end")
    ended = await http.post(f"/_sim/calls/{call_id}/blast", json={"count": 1})

    assert unknown.status_code == 404
    assert (no_socket.status_code, no_socket.json()["error"]["code"]) == (409, "no_open_socket")
    assert (wrong_socket.status_code, wrong_socket.json()["error"]["code"]) == (
        409,
        "no_open_socket",
    )
    assert (ended.status_code, ended.json()["error"]["code"]) == (409, "call_ended")


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 70000])
def test_pre_encoded_frames_are_what_a_websocket_client_reads(size: int) -> None:
    payloads = [b"x" * size, b'{"type":"a"}', "é".encode() * (size // 2)]

    frames = encode_text_frames(payloads, chunk_bytes=100)

    assert frames.frames == 3
    assert frames.payload_bytes == sum(len(p) for p in payloads)
    # whole frames only in each chunk
    assert [len(list(frame_texts(c))) for c in frames.chunks] == list(frames.chunk_frames)
    client = Connection(ConnectionType.CLIENT)
    for chunk in frames.chunks:
        client.receive_data(chunk)
    texts = [e.data for e in client.events() if isinstance(e, TextMessage)]
    assert "".join(texts) == "".join(p.decode() for p in payloads)
    assert [t for chunk in frames.chunks for t in frame_texts(chunk)] == [
        p.decode() for p in payloads
    ]
