"""The simulator's WebRTC calls, sideband WebSocket and control API, over real sockets.

Every server event a test client receives is checked against the SDK's `RealtimeServerEvent`
union (and for keys the SDK does not declare) as it arrives: see `Sideband.next`.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import trio
from openai.types.realtime import RealtimeServerEvent
from pydantic import TypeAdapter
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    WebSocketConnection,
    wrap_client_stream,
)

from realtime_trio.simulator import DEFAULT_API_KEY, RunningSimulator, SimulatorState, run_simulator
from realtime_trio.simulator.validation import undeclared_keys

AUTH = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}
OFFER = (
    "v=0\r\n"
    "o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n"
    "s=-\r\n"
    "t=0 0\r\n"
    "a=group:BUNDLE 0 1\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "a=mid:0\r\n"
    "a=sendrecv\r\n"
    "a=rtpmap:111 opus/48000/2\r\n"
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "a=mid:1\r\n"
    "a=sctp-port:5000\r\n"
)
TRANSCRIBED = {
    "type": "realtime",
    "instructions": "You are Acme's support agent.",
    "audio": {
        "input": {"transcription": {"model": "gpt-4o-mini-transcribe", "language": "en"}},
        "output": {"voice": "marin"},
    },
}
CALL_NOT_FOUND = (
    b'{"error": {"message": "No session found for the provided call_id", '
    b'"type": "invalid_request_error", "code": "call_id_not_found", "param": ""}}'
)
WAIT = 5  # seconds any single wait in these tests may take before it is a failure

_SERVER_EVENT = TypeAdapter(RealtimeServerEvent)
_SENT_THOUGH_UNDECLARED = {"session.id", "session.object"}


def checked_server_event(event: dict[str, Any]) -> dict[str, Any]:
    """*event*, after checking it has the SDK's shape and only keys the SDK declares."""
    model = _SERVER_EVENT.validate_python(event)
    extras = [path for path in undeclared_keys(model) if path not in _SENT_THOUGH_UNDECLARED]
    assert extras == [], f"{event['type']} has undeclared keys {extras}"
    return event


class Sideband:
    """A test client's sideband socket: every event received is checked and kept in `seen`."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    async def next(self) -> dict[str, Any]:
        with trio.fail_after(WAIT):
            event = checked_server_event(json.loads(await self.ws.get_message()))
        self.seen.append(event)
        return event

    async def until(
        self, type: str, *, where: Callable[[dict[str, Any]], bool] | None = None
    ) -> list[dict[str, Any]]:
        """The events received up to and including the first of *type* matching *where*."""
        got = []
        while True:
            event = await self.next()
            got.append(event)
            if event["type"] == type and (where is None or where(event)):
                return got

    async def send(self, event: dict[str, Any] | str) -> None:
        await self.ws.send_message(event if isinstance(event, str) else json.dumps(event))

    async def closed(self) -> int | None:
        """Read until the server closes; the close code the client saw."""
        with trio.fail_after(WAIT):
            while True:
                try:
                    await self.ws.get_message()
                except ConnectionClosed as closed:
                    return closed.reason.code


@pytest.fixture
async def http(simulator: RunningSimulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=simulator.url, timeout=WAIT) as client:
        yield client


async def mint(http: httpx.AsyncClient, session: dict[str, Any] | None = None) -> str:
    body = {"session": session} if session is not None else {}
    answer = await http.post("/v1/realtime/client_secrets", json=body, headers=AUTH)
    assert answer.status_code == 200
    return str(answer.json()["value"])


async def create_call(http: httpx.AsyncClient, secret: str) -> str:
    answer = await http.post(
        "/v1/realtime/calls",
        content=OFFER,
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/sdp"},
    )
    assert answer.status_code == 201, answer.text
    return answer.headers["location"].rsplit("/", 1)[1]


@pytest.fixture
async def call_id(http: httpx.AsyncClient) -> str:
    """A call created by a browser with a secret whose session transcribes input audio."""
    return await create_call(http, await mint(http, TRANSCRIBED))


def handshake(
    simulator: RunningSimulator, call_id: str | None, key: str | None
) -> tuple[str, int, str, str, list[tuple[bytes, bytes]]]:
    """Host, port, `Host:` value, resource and headers of a sideband handshake."""
    url = urlsplit(simulator.url)
    assert url.hostname is not None
    assert url.port is not None
    resource = "/v1/realtime" if call_id is None else f"/v1/realtime?call_id={call_id}"
    headers = [] if key is None else [(b"authorization", f"Bearer {key}".encode())]
    return url.hostname, url.port, url.netloc, resource, headers


@asynccontextmanager
async def sideband(
    simulator: RunningSimulator, call_id: str, key: str = DEFAULT_API_KEY
) -> AsyncIterator[Sideband]:
    """Attach to *call_id* and read its `session.created`.

    The connection runs on a TCP stream the test owns and closes: trio-websocket's own
    `open_websocket_url` leaves the socket open when the server closes first (or refuses the
    handshake), which these tests, with warnings as errors, would report.
    """
    host, port, netloc, resource, headers = handshake(simulator, call_id, key)
    with trio.fail_after(WAIT):
        stream = await trio.open_tcp_stream(host, port)
    async with stream, trio.open_nursery() as nursery:
        with trio.fail_after(WAIT):
            ws = await wrap_client_stream(nursery, stream, netloc, resource, extra_headers=headers)
        try:
            client = Sideband(ws)
            first = await client.next()
            assert first["type"] == "session.created"
            yield client
        finally:
            with trio.fail_after(WAIT):
                await ws.aclose()


async def rejection(
    simulator: RunningSimulator, call_id: str | None, key: str | None
) -> ConnectionRejected:
    """The refusal of a sideband handshake (on a stream the test owns: see `sideband`)."""
    host, port, netloc, resource, headers = handshake(simulator, call_id, key)
    rejected: list[ConnectionRejected] = []
    with trio.fail_after(WAIT):
        stream = await trio.open_tcp_stream(host, port)
        async with stream:
            try:
                async with trio.open_nursery() as nursery:
                    accepted = await wrap_client_stream(
                        nursery, stream, netloc, resource, extra_headers=headers
                    )
                    await accepted.aclose()
            except* ConnectionRejected as group:
                rejected.extend(group.exceptions)  # type: ignore[arg-type]
    assert len(rejected) == 1, "the handshake was accepted"
    return rejected[0]


def types(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in events]


# -- POST /v1/realtime/calls ------------------------------------------------------------------


async def test_a_minted_secret_creates_a_call(
    http: httpx.AsyncClient, simulator: RunningSimulator
) -> None:
    secret = await mint(http, TRANSCRIBED)

    answer = await http.post(
        "/v1/realtime/calls",
        content=OFFER,
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/sdp"},
    )

    assert answer.status_code == 201
    assert answer.headers["content-type"] == "application/sdp"
    assert re.fullmatch(r"/v1/realtime/calls/rtc_[0-9a-f]+", answer.headers["location"])
    sdp = answer.text
    assert sdp.startswith("v=0\r\n")
    assert sdp.endswith("\r\n")
    assert "a=group:BUNDLE 0 1\r\n" in sdp
    assert "\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n" in sdp
    assert "\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n" in sdp
    assert re.search(r"a=fingerprint:sha-256 ([0-9A-F]{2}:){31}[0-9A-F]{2}\r\n", sdp)

    call_id = answer.headers["location"].rsplit("/", 1)[1]
    call = simulator.state.calls[call_id]
    minted = simulator.state.secrets[secret].session
    assert call.secret == secret
    assert not call.ended
    assert call.session["id"].startswith("sess_")
    assert call.session["id"] != minted["id"]  # each call is a session of its own
    assert {**call.session, "id": None} == {**minted, "id": None}
    listed = (await http.get("/_sim/calls")).json()["calls"]
    assert [c["callId"] for c in listed] == [call_id]


@pytest.mark.parametrize("key", [None, "ek_0123456789abcdef0123456789abcdef"])
async def test_an_unknown_secret_cannot_create_a_call(
    http: httpx.AsyncClient, key: str | None
) -> None:
    headers = {"Content-Type": "application/sdp"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"

    answer = await http.post("/v1/realtime/calls", content=OFFER, headers=headers)

    assert answer.status_code == 401
    error = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    if key is None:
        assert error["message"].startswith("You didn't provide an API key.")
    else:
        assert error["code"] == "invalid_api_key"
        assert key not in error["message"]


async def test_an_expired_secret_cannot_create_a_call(nursery: trio.Nursery) -> None:
    now = [1_000_000.0]
    state = SimulatorState(clock=lambda: now[0])
    simulator: RunningSimulator = await nursery.start(lambda **kw: run_simulator(state=state, **kw))
    async with httpx.AsyncClient(base_url=simulator.url) as http:
        secret = await mint(http)
        now[0] += 600

        answer = await http.post(
            "/v1/realtime/calls",
            content=OFFER,
            headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/sdp"},
        )

    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "invalid_api_key"
    assert state.calls == {}


@pytest.mark.parametrize(
    ("content", "content_type", "param", "code"),
    [
        ("", "application/sdp", "sdp", "missing_required_parameter"),
        ("  \r\n", "application/sdp", "sdp", "missing_required_parameter"),
        ("hello", "application/sdp", "sdp", "invalid_value"),
        ("v=0\r\ns=-\r\n", "application/sdp", "sdp", "invalid_value"),
        (OFFER, "application/json", None, "unsupported_content_type"),
        (OFFER, "text/plain", None, "unsupported_content_type"),
    ],
)
async def test_a_bad_offer_is_a_400(
    http: httpx.AsyncClient,
    simulator: RunningSimulator,
    content: str,
    content_type: str,
    param: str | None,
    code: str,
) -> None:
    secret = await mint(http)

    answer = await http.post(
        "/v1/realtime/calls",
        content=content,
        headers={"Authorization": f"Bearer {secret}", "Content-Type": content_type},
    )

    assert answer.status_code == 400
    error = answer.json()["error"]
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error")
    assert simulator.state.calls == {}


async def test_the_unified_interface_takes_a_multipart_offer_and_session(
    http: httpx.AsyncClient, simulator: RunningSimulator
) -> None:
    session = {
        "type": "realtime",
        "instructions": "Be brief.",
        "audio": {"output": {"voice": "cedar"}},
    }

    answer = await http.post(
        "/v1/realtime/calls",
        files=[
            ("sdp", (None, OFFER.encode(), "application/sdp")),
            ("session", (None, json.dumps(session).encode(), "application/json")),
        ],
        headers=AUTH,
    )

    assert answer.status_code == 201, answer.text
    assert answer.headers["content-type"] == "application/sdp"
    assert answer.text.startswith("v=0\r\n")
    call = simulator.state.calls[answer.headers["location"].rsplit("/", 1)[1]]
    assert call.secret is None
    assert call.session["object"] == "realtime.session"
    assert call.session["instructions"] == "Be brief."
    assert call.session["audio"]["output"] == {
        "format": {"type": "audio/pcm", "rate": 24000},
        "voice": "cedar",
        "speed": 1.0,
    }
    assert call.session["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    recorded = simulator.state.requests_to("/v1/realtime/calls")
    assert recorded[-1].headers["content-type"].startswith("multipart/form-data; boundary=")


@pytest.mark.parametrize(
    ("session", "param", "code"),
    [
        ({"type": "realtime", "modle": "gpt-realtime"}, "session.modle", "unknown_parameter"),
        ({"type": "transcription"}, "session.type", "invalid_value"),
        ({"instructions": "x"}, "session.type", "missing_required_parameter"),
    ],
)
async def test_a_bad_session_part_is_a_400(
    http: httpx.AsyncClient, session: dict[str, Any], param: str, code: str
) -> None:
    answer = await http.post(
        "/v1/realtime/calls",
        files=[
            ("sdp", (None, OFFER.encode(), "application/sdp")),
            ("session", (None, json.dumps(session).encode(), "application/json")),
        ],
        headers=AUTH,
    )

    assert answer.status_code == 400
    error = answer.json()["error"]
    assert (error["param"], error["code"]) == (param, code)


async def test_hangup_ends_the_call(
    http: httpx.AsyncClient, simulator: RunningSimulator, call_id: str
) -> None:
    secret = simulator.state.calls[call_id].secret
    assert secret is not None
    async with sideband(simulator, call_id) as client:
        by_secret = await http.post(
            f"/v1/realtime/calls/{call_id}/hangup", headers={"Authorization": f"Bearer {secret}"}
        )
        assert by_secret.status_code == 401

        answer = await http.post(f"/v1/realtime/calls/{call_id}/hangup", headers=AUTH)

        assert answer.status_code == 200
        assert answer.content == b""
        assert await client.closed() == 1000
    assert simulator.state.calls[call_id].ended
    again = await http.post(f"/v1/realtime/calls/{call_id}/hangup", headers=AUTH)
    unknown = await http.post("/v1/realtime/calls/rtc_nothing/hangup", headers=AUTH)
    assert (again.status_code, unknown.status_code) == (404, 404)
    assert unknown.json()["error"]["type"] == "invalid_request_error"
    assert (await rejection(simulator, call_id, DEFAULT_API_KEY)).body == CALL_NOT_FOUND


# -- the sideband handshake -------------------------------------------------------------------


async def test_the_handshake_is_refused_with_openai_error_bodies(
    http: httpx.AsyncClient, simulator: RunningSimulator, call_id: str
) -> None:
    other_secret = await mint(http)

    no_key = await rejection(simulator, call_id, None)
    wrong_key = await rejection(simulator, call_id, "sk-proj-wrongwrongwrong1234")
    unknown_call = await rejection(simulator, "rtc_0123456789abcdef", DEFAULT_API_KEY)
    no_call_id = await rejection(simulator, None, DEFAULT_API_KEY)
    another_secret = await rejection(simulator, call_id, other_secret)

    assert no_key.status_code == 401
    assert json.loads(no_key.body)["error"]["message"].startswith("You didn't provide an API key.")
    assert wrong_key.status_code == 401
    assert json.loads(wrong_key.body)["error"]["code"] == "invalid_api_key"
    assert unknown_call.status_code == 404
    assert unknown_call.body == CALL_NOT_FOUND
    assert json.loads(unknown_call.body) == {
        "error": {
            "message": "No session found for the provided call_id",
            "type": "invalid_request_error",
            "code": "call_id_not_found",
            "param": "",
        }
    }
    assert no_call_id.status_code == 400
    assert json.loads(no_call_id.body)["error"]["param"] == "call_id"
    assert another_secret.status_code == 404
    assert another_secret.body == CALL_NOT_FOUND
    headers = dict(unknown_call.headers)
    assert headers[b"content-type"] == b"application/json"
    assert simulator.state.calls[call_id].sockets == {}
    handshakes = simulator.state.requests_to("/v1/realtime")
    assert len(handshakes) == 5
    assert handshakes[0].method == "GET"
    assert handshakes[0].query == f"call_id={call_id}"


async def test_the_secret_that_created_the_call_may_attach(
    simulator: RunningSimulator, call_id: str
) -> None:
    call = simulator.state.calls[call_id]
    assert call.secret is not None

    async with sideband(simulator, call_id, key=call.secret) as client:
        assert client.seen[0]["session"] == call.session

    assert [s.auth for s in call.sockets.values()] == ["client_secret"]


async def test_a_fault_armed_on_the_handshake_refuses_it_once(
    http: httpx.AsyncClient, simulator: RunningSimulator, call_id: str
) -> None:
    armed = await http.post("/_sim/faults", json={"path": "/v1/realtime", "status": 503})
    assert armed.status_code == 201

    refused = await rejection(simulator, call_id, DEFAULT_API_KEY)
    async with sideband(simulator, call_id):
        pass

    assert refused.status_code == 503
    assert json.loads(refused.body)["error"]["type"] == "server_error"


# -- events on the sideband -------------------------------------------------------------------


async def test_session_created_then_session_update_merges(
    simulator: RunningSimulator, call_id: str
) -> None:
    call = simulator.state.calls[call_id]
    async with sideband(simulator, call_id) as client:
        created = client.seen[0]
        assert created["session"] == call.session
        assert created["session"]["instructions"] == "You are Acme's support agent."
        assert created["event_id"].startswith("event_")
        tool = {
            "type": "function",
            "name": "lookup_order",
            "description": "Look up an order.",
            "parameters": {"type": "object", "properties": {"n": {"type": "string"}}},
        }

        await client.send(
            {
                "type": "session.update",
                "event_id": "srv_1",
                "session": {
                    "type": "realtime",
                    "instructions": "Call lookup_order first.",
                    "tools": [tool],
                    "audio": {"input": {"transcription": {"model": "whisper-1"}}},
                },
            }
        )
        updated = await client.next()

        assert updated["type"] == "session.updated"
        assert "srv_1" not in json.dumps(updated)
        expected = json.loads(json.dumps(created["session"]))
        expected["instructions"] = "Call lookup_order first."
        expected["tools"] = [tool]
        expected["audio"]["input"]["transcription"] = {"model": "whisper-1", "language": "en"}
        assert updated["session"] == expected
        assert expected["audio"]["output"]["voice"] == "marin"  # untouched keys stay

        await client.send(
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "instructions": "",
                    "tools": [],
                    "audio": {"input": {"turn_detection": None}},
                },
            }
        )
        cleared = (await client.next())["session"]

    assert cleared["instructions"] == ""
    assert cleared["tools"] == []
    assert cleared["audio"]["input"]["turn_detection"] is None
    assert cleared["audio"]["input"]["transcription"] == {"model": "whisper-1", "language": "en"}
    assert call.session == cleared


async def test_session_update_refuses_what_the_api_does_not_change(
    http: httpx.AsyncClient, simulator: RunningSimulator, call_id: str
) -> None:
    call = simulator.state.calls[call_id]
    async with sideband(simulator, call_id) as client:
        same_model = {"type": "realtime", "model": call.session["model"]}
        await client.send({"type": "session.update", "session": same_model})
        accepted = await client.next()
        await client.send(
            {"type": "session.update", "session": {"type": "realtime", "model": "gpt-realtime-2"}}
        )
        new_model = await client.next()
        await client.send({"type": "session.update", "session": {"type": "transcription"}})
        new_type = await client.next()
        voice = {"type": "realtime", "audio": {"output": {"voice": "cedar"}}}
        await client.send({"type": "session.update", "session": voice})
        voice_before_audio = await client.next()
        await http.post(f"/_sim/calls/{call_id}/assistant", json={"text": "Hi."})
        await client.until("response.done")
        voice["audio"]["output"]["voice"] = "ash"
        await client.send({"type": "session.update", "event_id": "v2", "session": voice})
        voice_after_audio = await client.next()

    assert accepted["type"] == "session.updated"
    assert (new_model["type"], new_model["error"]["param"]) == ("error", "session.model")
    assert (new_type["type"], new_type["error"]["param"]) == ("error", "session.type")
    assert voice_before_audio["type"] == "session.updated"
    assert voice_after_audio["type"] == "error"
    assert voice_after_audio["error"]["param"] == "session.audio.output.voice"
    assert voice_after_audio["error"]["event_id"] == "v2"
    assert call.session["audio"]["output"]["voice"] == "cedar"


@pytest.mark.parametrize(
    ("frame", "param", "code"),
    [
        (
            {"type": "session.update", "session": {"type": "realtime", "instructionz": "x"}},
            "session.instructionz",
            "unknown_parameter",
        ),
        ({"type": "session.update", "session": {"instructions": "x"}}, "session.type", None),
        ({"type": "response.create", "response": {"tool_choice": 5}}, "response.tool_choice", None),
        (
            {
                "type": "conversation.item.create",
                "item": {"type": "message", "role": "user", "content": [{"type": "input_text"}]},
                "previous_item_id": 7,
            },
            "previous_item_id",
            "invalid_type",
        ),
        (
            {"type": "conversation.item.create", "item": {"type": "function_call_output"}},
            "item.call_id",
            "missing_required_parameter",
        ),
        ({"type": "scooby.dooby.doo"}, "type", "invalid_value"),
        ({"type": "response.cancel", "bogus": True}, "bogus", "unknown_parameter"),
        ("{not json", None, "invalid_json"),
        ("[1, 2]", None, "invalid_type"),
    ],
)
async def test_an_invalid_client_event_is_answered_with_an_error_event(
    simulator: RunningSimulator, call_id: str, frame: dict[str, Any] | str, param: str, code: str
) -> None:
    call = simulator.state.calls[call_id]
    async with sideband(simulator, call_id) as client:
        if isinstance(frame, dict):
            frame = {**frame, "event_id": "evt_bad"}
        await client.send(frame)
        error = await client.next()

        # the socket stays open and usable
        await client.send({"type": "input_audio_buffer.clear", "event_id": "evt_good"})
        cleared = await client.next()

    assert error["type"] == "error"
    assert error["event_id"].startswith("event_")
    assert error["error"]["type"] == "invalid_request_error"
    assert error["error"]["param"] == param
    if code is not None:
        assert error["error"]["code"] == code
    assert error["error"]["message"]
    assert error["error"]["event_id"] == ("evt_bad" if isinstance(frame, dict) else None)
    assert cleared["type"] == "input_audio_buffer.cleared"
    recorded = [(r.socket_id, r.valid, r.event.get("event_id")) for r in call.client_events]
    expected_id = "evt_bad" if isinstance(frame, dict) else None
    assert recorded == [(1, False, expected_id), (1, True, "evt_good")]
    assert call.client_events[0].raw == (frame if isinstance(frame, str) else json.dumps(frame))
    assert call.client_events[0].error == error["error"]


async def test_items_are_placed_by_previous_item_id_and_broadcast(
    simulator: RunningSimulator, call_id: str
) -> None:
    def user_text(text: str) -> dict[str, Any]:
        content = [{"type": "input_text", "text": text}]
        return {"type": "message", "role": "user", "content": content}

    system = {
        "type": "message",
        "role": "system",
        "content": [{"type": "input_text", "text": "Caller verified."}],
    }
    call = simulator.state.calls[call_id]
    async with sideband(simulator, call_id) as first, sideband(simulator, call_id) as second:
        created = []
        for sender, event in [
            (first, {"item": {**user_text("A"), "id": "item_a"}}),
            (second, {"item": user_text("B")}),
            (first, {"item": system, "previous_item_id": "root"}),
        ]:
            await sender.send({"type": "conversation.item.create", **event})
            seen = [await first.next(), await first.next()]
            assert [await second.next(), await second.next()] == seen  # one broadcast, both see it
            created.append(seen)
        await first.send(
            {
                "type": "conversation.item.create",
                "event_id": "evt_lost",
                "previous_item_id": "item_missing",
                "item": user_text("C"),
            }
        )
        error = await first.next()

    assert [types(pair) for pair in created] == [
        ["conversation.item.added", "conversation.item.done"]
    ] * 3
    for added, done in created:
        assert added["item"] == done["item"]
        assert added["previous_item_id"] == done["previous_item_id"]
    item_a, item_b, system_item = (pair[0]["item"] for pair in created)
    assert item_a == {
        "id": "item_a",
        "object": "realtime.item",
        "type": "message",
        "status": "completed",
        "role": "user",
        "content": [{"type": "input_text", "text": "A"}],
    }
    assert re.fullmatch(r"item_[0-9a-f]+", item_b["id"])
    assert system_item["role"] == "system"
    assert [pair[0]["previous_item_id"] for pair in created] == [None, "item_a", None]
    assert error["type"] == "error"
    assert error["error"]["param"] == "previous_item_id"
    assert error["error"]["event_id"] == "evt_lost"
    assert [item["id"] for item in call.items] == [system_item["id"], "item_a", item_b["id"]]
    assert [r.socket_id for r in call.client_events] == [1, 2, 1, 1]
    assert [r.valid for r in call.client_events] == [True, True, True, False]


async def test_items_can_be_retrieved_truncated_and_deleted(
    http: httpx.AsyncClient, simulator: RunningSimulator, call_id: str
) -> None:
    async with sideband(simulator, call_id) as client:
        said = await http.post(f"/_sim/calls/{call_id}/assistant", json={"text": "Hello there."})
        assistant_id = said.json()["itemId"]
        await client.until("response.done")

        await client.send({"type": "conversation.item.retrieve", "item_id": assistant_id})
        retrieved = await client.next()
        await client.send(
            {
                "type": "conversation.item.truncate",
                "item_id": assistant_id,
                "content_index": 0,
                "audio_end_ms": 300,
            }
        )
        truncated = await client.next()
        await client.send({"type": "conversation.item.delete", "item_id": assistant_id})
        deleted = await client.next()
        await client.send({"type": "conversation.item.delete", "item_id": assistant_id})
        missing = await client.next()

    assert retrieved["type"] == "conversation.item.retrieved"
    assert retrieved["item"]["content"] == [{"type": "output_audio", "transcript": "Hello there."}]
    assert truncated == {
        **truncated,
        "type": "conversation.item.truncated",
        "item_id": assistant_id,
        "content_index": 0,
        "audio_end_ms": 300,
    }
    assert deleted["type"] == "conversation.item.deleted"
    assert deleted["item_id"] == assistant_id
    assert missing["type"] == "error"
    assert missing["error"]["param"] == "item_id"
    assert simulator.state.calls[call_id].items == []


async def test_a_user_turn_with_a_late_transcription(
    http: httpx.AsyncClient, simulator: RunningSimulator, call_id: str
) -> None:
    queued = await http.post(
        f"/_sim/calls/{call_id}/replies", json={"text": "Let me check that for you."}
    )
    async with sideband(simulator, call_id) as client:
        user = await http.post(
            f"/_sim/calls/{call_id}/user",
            json={"text": "Where is my order 1234?", "transcriptionDelayMs": 300},
        )
        events = await client.until("conversation.item.input_audio_transcription.completed")

    assert queued.json() == {"queued": 1}
    assert user.status_code == 200
    assert set(user.json()) == {"itemId", "responseId"}  # voice activity started a response
    user_id = user.json()["itemId"]
    assert re.fullmatch(r"item_[0-9a-f]+", user_id)
    response_id = user.json()["responseId"]
    assert response_id.startswith("resp_")
    assistant_id = events[7]["item"]["id"]

    kinds = types(events)
    deltas = [e for e in events if e["type"] == "response.output_audio_transcript.delta"]
    transcript_deltas = [
        e for e in events if e["type"] == "conversation.item.input_audio_transcription.delta"
    ]
    assert kinds == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
        "response.created",
        "rate_limits.updated",
        "response.output_item.added",
        "conversation.item.added",
        "response.content_part.added",
        *["response.output_audio_transcript.delta"] * len(deltas),
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
        *["conversation.item.input_audio_transcription.delta"] * len(transcript_deltas),
        "conversation.item.input_audio_transcription.completed",
    ]
    started, stopped, committed, user_added, user_done = events[:5]
    assert started["item_id"] == stopped["item_id"] == committed["item_id"] == user_id
    assert started["audio_start_ms"] < stopped["audio_end_ms"]
    assert committed["previous_item_id"] is None
    user_item = {
        "id": user_id,
        "object": "realtime.item",
        "type": "message",
        "status": "completed",
        "role": "user",
        "content": [{"type": "input_audio", "transcript": None}],
    }
    assert (user_added["item"], user_added["previous_item_id"]) == (user_item, None)
    assert (user_done["item"], user_done["previous_item_id"]) == (user_item, None)

    created = events[5]["response"]
    assert (created["id"], created["status"], created["output"]) == (response_id, "in_progress", [])
    assert created["conversation_id"].startswith("conv_")
    assert created["audio"]["output"]["voice"] == "marin"
    assistant_added = events[8]
    assert assistant_added["item"]["id"] == assistant_id
    assert assistant_added["item"]["status"] == "in_progress"
    assert assistant_added["previous_item_id"] == user_id
    assert 1 < len(deltas) <= 3
    assert "".join(e["delta"] for e in deltas) == "Let me check that for you."
    assert {(e["response_id"], e["item_id"]) for e in deltas} == {(response_id, assistant_id)}
    done = next(e for e in events if e["type"] == "response.done")["response"]
    final_item = {
        "id": assistant_id,
        "object": "realtime.item",
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_audio", "transcript": "Let me check that for you."}],
    }
    assert (done["id"], done["status"], done["output"]) == (response_id, "completed", [final_item])
    assert done["usage"]["total_tokens"] > 0
    assistant_done = next(
        e
        for e in events
        if e["type"] == "conversation.item.done" and e["item"]["role"] == "assistant"
    )
    assert (assistant_done["item"], assistant_done["previous_item_id"]) == (final_item, user_id)

    completed = events[-1]
    assert completed["item_id"] == user_id
    assert completed["content_index"] == 0
    assert completed["transcript"] == "Where is my order 1234?"
    assert completed["usage"]["type"] == "tokens"
    assert "".join(e["delta"] for e in transcript_deltas) == "Where is my order 1234?"
    state = (await http.get(f"/_sim/calls/{call_id}")).json()
    assert state["items"][0]["content"] == [
        {"type": "input_audio", "transcript": "Where is my order 1234?"}
    ]
    assert [item["id"] for item in state["items"]] == [user_id, assistant_id]


async def test_a_failed_transcription_and_a_session_without_transcription(
    http: httpx.AsyncClient, simulator: RunningSimulator
) -> None:
    transcribed = await create_call(http, await mint(http, TRANSCRIBED))
    silent = await create_call(http, await mint(http, {"type": "realtime"}))
    async with sideband(simulator, transcribed) as client, sideband(simulator, silent) as other:
        await http.post(
            f"/_sim/calls/{transcribed}/user", json={"text": "Hm.", "transcriptionFails": True}
        )
        failed = (await client.until("conversation.item.input_audio_transcription.failed"))[-1]

        await http.post(f"/_sim/calls/{silent}/user", json={"text": "Hello?"})
        await http.post(f"/_sim/calls/{silent}/assistant", json={"text": "Hi."})
        untranscribed = await other.until("response.done")

    assert failed["content_index"] == 0
    assert failed["error"]["message"]
    assert not any("transcription" in kind for kind in types(untranscribed))


async def test_a_user_barging_in_cancels_the_response(
    http: httpx.AsyncClient, simulator: RunningSimulator, call_id: str
) -> None:
    call = simulator.state.calls[call_id]
    async with sideband(simulator, call_id) as client, trio.open_nursery() as nursery:
        nursery.start_soon(
            partial(call.assistant_says, "One moment while I look that up.", delta_delay=30)
        )
        await client.until("response.output_audio_transcript.delta")

        await http.post(f"/_sim/calls/{call_id}/user", json={"text": "Actually, never mind."})
        events = await client.until(
            "conversation.item.done", where=lambda e: e["item"]["role"] == "user"
        )

    assert types(events) == [
        "input_audio_buffer.speech_started",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
        "output_audio_buffer.cleared",
        "conversation.item.truncated",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
    ]
    done = events[5]["response"]
    assert done["status"] == "cancelled"
    assert done["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
    assert done["output"][0]["status"] == "incomplete"
    assert done["output"][0]["content"] == [
        {"type": "output_audio", "transcript": "One moment while "}
    ]
    assert events[6]["response_id"] == done["id"]
    # the first delta's audio was still playing (30 s a delta): none of it counts as heard
    truncated = events[7]
    assert (truncated["item_id"], truncated["content_index"], truncated["audio_end_ms"]) == (
        done["output"][0]["id"],
        0,
        0,
    )
    assert call.items[0]["content"] == [{"type": "output_audio", "transcript": ""}]
    assert events[9]["previous_item_id"] == done["output"][0]["id"]


async def test_response_create_plays_the_queued_reply_one_at_a_time(
    http: httpx.AsyncClient, simulator: RunningSimulator, call_id: str
) -> None:
    queued = await http.post(
        f"/_sim/calls/{call_id}/replies",
        json={"text": "Your order shipped.", "deltaDelayMs": 30_000},
    )
    assert queued.json() == {"queued": 1}
    async with sideband(simulator, call_id) as client:
        await client.send({"type": "response.create", "event_id": "r1"})
        created = (await client.until("response.created"))[-1]["response"]
        await client.send({"type": "response.create", "event_id": "r2"})
        refused = (await client.until("error"))[-1]
        await client.send({"type": "response.cancel", "event_id": "c1"})
        cancelled = (await client.until("response.done"))[-1]["response"]
        await client.send({"type": "response.cancel", "event_id": "c2"})
        nothing_to_cancel = (await client.until("error"))[-1]
        await client.send(
            {
                "type": "response.create",
                "response": {"output_modalities": ["text"], "metadata": {"turn": "2"}},
            }
        )
        second = await client.until("response.done")

    assert refused["error"]["code"] == "conversation_already_has_active_response"
    assert refused["error"]["event_id"] == "r2"
    assert created["id"] in refused["error"]["message"]
    assert cancelled["id"] == created["id"]
    assert cancelled["status"] == "cancelled"
    assert cancelled["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
    assert cancelled["output"][0]["content"] == [{"type": "output_audio", "transcript": "Your "}]
    assert nothing_to_cancel["error"]["code"] == "response_cancel_not_active"
    assert nothing_to_cancel["error"]["event_id"] == "c2"
    assert "response.output_text.delta" in types(second)
    done = second[-1]["response"]
    assert done["status"] == "completed"
    assert done["output_modalities"] == ["text"]
    assert done["metadata"] == {"turn": "2"}
    assert done["output"][0]["content"] == [
        {"type": "output_text", "text": "Sure, I can help with that."}
    ]
    call = simulator.state.calls[call_id]
    assert [(r.event.get("event_id"), r.valid) for r in call.client_events] == [
        ("r1", True),
        ("r2", False),
        ("c1", True),
        ("c2", False),
        (None, True),
    ]


async def test_an_out_of_band_response_stays_out_of_the_conversation(
    simulator: RunningSimulator, call_id: str
) -> None:
    async with sideband(simulator, call_id) as client:
        await client.send(
            {
                "type": "response.create",
                "response": {
                    "conversation": "none",
                    "output_modalities": ["text"],
                    "input": [
                        {"type": "item_reference", "id": "item_x"},
                        {
                            "type": "message",
                            "role": "user",
                            "content": [{"type": "input_text", "text": "Classify it."}],
                        },
                    ],
                },
            }
        )
        events = await client.until("response.done")

    assert "conversation.item.added" not in types(events)
    assert events[-1]["response"]["conversation_id"] is None
    assert simulator.state.calls[call_id].items == []


async def test_a_tool_call_round_trip(
    http: httpx.AsyncClient, simulator: RunningSimulator, call_id: str
) -> None:
    answered: dict[str, Any] = {}

    async def server_side(client: Sideband) -> None:
        """Run the function once its call is done, then ask the model to speak about it."""
        events = await client.until("response.function_call_arguments.done")
        call = events[-1]
        events += await client.until("response.done")
        answered["events"] = events
        await client.send(
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "function_call_output",
                    "call_id": call["call_id"],
                    "output": json.dumps({"status": "shipped"}),
                },
            }
        )
        await client.send({"type": "response.create"})
        answered["after"] = await client.until("response.done")

    async with sideband(simulator, call_id) as client, trio.open_nursery() as nursery:
        nursery.start_soon(server_side, client)
        answer = await http.post(
            f"/_sim/calls/{call_id}/tool-call",
            json={"name": "lookup_order", "arguments": {"order_number": "1234"}},
        )

    result = answer.json()
    assert answer.status_code == 200
    assert set(result) == {
        "callId",
        "responseId",
        "itemId",
        "output",
        "responseCreated",
        "timings",
    }
    timings = result["timings"]
    assert None not in timings.values()
    assert timings["argumentsDoneSentAt"] <= timings["outputReceivedAt"]
    assert timings["outputReceivedAt"] <= timings["responseCreateReceivedAt"]
    assert re.fullmatch(r"call_[0-9a-f]+", result["callId"])
    assert result["output"] == '{"status": "shipped"}'
    assert result["responseCreated"] is True
    events = answered["events"]
    assert types(events) == [
        "response.created",
        "rate_limits.updated",
        "response.output_item.added",
        "conversation.item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
    ]
    added = events[2]["item"]
    assert added == {
        "id": result["itemId"],
        "object": "realtime.item",
        "type": "function_call",
        "status": "in_progress",
        "name": "lookup_order",
        "call_id": result["callId"],
        "arguments": "",
    }
    arguments_done = events[6]
    assert arguments_done["name"] == "lookup_order"
    assert arguments_done["arguments"] == '{"order_number":"1234"}'
    assert "".join(e["delta"] for e in events[4:6]) == arguments_done["arguments"]
    done = events[-1]["response"]
    assert done["id"] == result["responseId"]
    assert done["status"] == "completed"
    assert done["output"] == [
        {**added, "status": "completed", "arguments": '{"order_number":"1234"}'}
    ]
    after = answered["after"]
    assert types(after)[:3] == [
        "conversation.item.added",
        "conversation.item.done",
        "response.created",
    ]
    assert after[0]["item"]["type"] == "function_call_output"
    assert after[0]["previous_item_id"] == result["itemId"]
    assert after[-1]["response"]["status"] == "completed"


async def test_a_tool_call_nobody_answers_times_out_with_what_was_seen(
    http: httpx.AsyncClient, simulator: RunningSimulator, call_id: str
) -> None:
    async with sideband(simulator, call_id):
        answer = await http.post(
            f"/_sim/calls/{call_id}/tool-call",
            json={"name": "noop", "arguments": "{}", "timeoutSeconds": 0.2},
        )
        unwaited = await http.post(
            f"/_sim/calls/{call_id}/tool-call", json={"name": "noop", "wait": False}
        )

    assert answer.json()["output"] is None
    assert answer.json()["responseCreated"] is False
    assert unwaited.json()["output"] is None


async def test_the_input_audio_buffer(simulator: RunningSimulator, call_id: str) -> None:
    pcm_200ms = base64.b64encode(bytes(24_000 * 2 // 5)).decode()
    async with sideband(simulator, call_id) as client:
        await client.send({"type": "input_audio_buffer.commit", "event_id": "early"})
        empty = await client.next()
        await client.send({"type": "input_audio_buffer.append", "audio": "not base64!"})
        garbled = await client.next()
        await client.send({"type": "input_audio_buffer.append", "audio": pcm_200ms})
        await client.send({"type": "input_audio_buffer.commit"})
        committed = [await client.next() for _ in range(3)]
        await client.send({"type": "input_audio_buffer.clear"})
        cleared = await client.next()

    assert empty["error"]["code"] == "input_audio_buffer_commit_empty"
    assert empty["error"]["event_id"] == "early"
    assert garbled["error"]["param"] == "audio"
    assert types(committed) == [
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
    ]
    assert cleared["type"] == "input_audio_buffer.cleared"


# -- ending, dropping, closing ----------------------------------------------------------------


async def test_ending_a_call_closes_its_sockets_with_1000(
    http: httpx.AsyncClient, simulator: RunningSimulator, call_id: str
) -> None:
    call = simulator.state.calls[call_id]
    async with sideband(simulator, call_id) as first, sideband(simulator, call_id) as second:
        await http.post(f"/_sim/calls/{call_id}/assistant", json={"text": "Goodbye."})
        ended = await http.post(f"/_sim/calls/{call_id}/end")

        # what was queued before the end still arrives, then the close
        assert types(await first.until("response.done"))[0] == "response.created"
        assert await first.closed() == 1000
        assert await second.closed() == 1000

    assert ended.json() == {"callId": call_id, "ended": True, "closedSockets": 2}
    with trio.fail_after(WAIT):
        assert await call.wait_for_socket_closed(1) == 1000
        assert await call.wait_for_socket_closed(2) == 1000
    state = (await http.get(f"/_sim/calls/{call_id}")).json()
    assert state["ended"] is True
    assert [(s["id"], s["open"], s["closeCode"]) for s in state["sockets"]] == [
        (1, False, 1000),
        (2, False, 1000),
    ]
    assert (await rejection(simulator, call_id, DEFAULT_API_KEY)).body == CALL_NOT_FOUND
    late = await http.post(f"/_sim/calls/{call_id}/user", json={"text": "Hello?"})
    assert late.status_code == 409
    assert late.json()["error"]["code"] == "call_ended"


async def test_a_drop_is_abrupt_and_the_client_can_reconnect(
    http: httpx.AsyncClient, simulator: RunningSimulator, call_id: str
) -> None:
    call = simulator.state.calls[call_id]
    async with sideband(simulator, call_id) as client:
        dropped = await http.post(f"/_sim/calls/{call_id}/drop")
        seen_by_client = await client.closed()

    assert dropped.json() == {"droppedSockets": 1}
    assert seen_by_client == 1006  # the connection ended with no close frame
    with trio.fail_after(WAIT):
        assert await call.wait_for_socket_closed(1) == 1006
    assert not call.ended

    async with sideband(simulator, call_id) as again:
        await http.post(f"/_sim/calls/{call_id}/assistant", json={"text": "Still here."})
        assert (await again.until("response.done"))[-1]["response"]["status"] == "completed"
        assert again.seen[0]["session"] == call.session
    assert [(s.id, s.open) for s in call.sockets.values()] == [(1, False), (2, False)]


@pytest.mark.parametrize("code", [1000, 4000])
async def test_the_close_code_a_client_sends_is_recorded(
    simulator: RunningSimulator, call_id: str, code: int
) -> None:
    call = simulator.state.calls[call_id]
    async with sideband(simulator, call_id) as client:
        await client.ws.aclose(code=code)

    with trio.fail_after(WAIT):
        assert await call.wait_for_socket_closed(1) == code
    assert call.sockets[1].as_json()["closeCode"] == code
    assert not call.ended


# -- the control API and the in-process helpers -----------------------------------------------


async def test_raw_frames_and_arbitrary_events_can_be_sent(
    http: httpx.AsyncClient, simulator: RunningSimulator, call_id: str
) -> None:
    async with sideband(simulator, call_id) as client:
        raw = await http.post(f"/_sim/calls/{call_id}/send", json={"raw": "{oops"})
        with trio.fail_after(WAIT):
            assert await client.ws.get_message() == "{oops"
        event = {"type": "input_audio_buffer.cleared", "event_id": "event_custom"}
        sent = await http.post(f"/_sim/calls/{call_id}/send", json={"event": event})
        assert await client.next() == event

    assert raw.json() == {"sent": 1}
    assert sent.json() == {"sent": 1}


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/_sim/calls/rtc_missing", None, 404),
        ("POST", "/_sim/calls/rtc_missing/user", {"text": "hi"}, 404),
        ("POST", "/_sim/calls/rtc_missing/end", None, 404),
        ("POST", "/_sim/calls/{call}/user", {"txt": "hi"}, 400),
        ("POST", "/_sim/calls/{call}/user", {"text": 5}, 400),
        ("POST", "/_sim/calls/{call}/send", {}, 400),
        ("POST", "/_sim/calls/{call}/tool-call", {"name": "x", "timeoutSeconds": -1}, 400),
    ],
)
async def test_control_api_errors(
    http: httpx.AsyncClient,
    call_id: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    status: int,
) -> None:
    answer = await http.request(method, path.format(call=call_id), json=body)

    assert answer.status_code == status
    assert answer.json()["error"]["message"]


async def test_the_in_process_helpers(simulator: RunningSimulator, call_id: str) -> None:
    call = simulator.state.calls[call_id]
    async with trio.open_nursery() as nursery:

        async def attach_two() -> None:
            async with sideband(simulator, call_id) as first, sideband(simulator, call_id):
                await first.send({"type": "input_audio_buffer.clear"})
                await first.send({"type": "response.create", "event_id": "go"})
                await first.until("response.done")

        nursery.start_soon(attach_two)
        with trio.fail_after(WAIT):
            await call.wait_for_open_sockets(2)
            create = await call.wait_for_client_event(
                "response.create", where=lambda e: e.get("event_id") == "go"
            )
            assert create == {"type": "response.create", "event_id": "go"}
            index = len(call.client_events)
            while (playing := call.active_response) is not None:
                await playing.finished.wait()
            user_id = await call.user_says("Hi there.")
            started = call.active_response  # voice activity answers the user by itself
            assert started is not None
            await started.finished.wait()
            response = await call.assistant_says("Hello!")
            with trio.move_on_after(0.05) as nothing_new:
                await call.wait_for_client_event("response.create", after=index)
            assert nothing_new.cancelled_caught

    assert response.status == "completed"
    assert [item["id"] for item in call.items][-3:] == [
        user_id,
        started.item_id,
        response.item_id,
    ]
    assert call.items[-1]["content"] == [{"type": "output_audio", "transcript": "Hello!"}]
    assert [r.event["type"] for r in call.client_events] == [
        "input_audio_buffer.clear",
        "response.create",
    ]
