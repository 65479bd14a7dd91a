"""Both sideband transports (`SIDEBAND_TRANSPORT`) behave alike, over real sockets.

The first half drives the server and the simulator end to end; the second talks to a scripted
upstream built on `websockets`' server protocol, for what the simulator cannot produce (pings,
fragmented messages, a server's close reason, a bare TCP close) and to see exactly what the
client put on the wire.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

import httpx
import pytest
import trio
from websockets.datastructures import Headers
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol

from realtime_trio._config import Settings
from realtime_trio._live_session import LiveSession
from realtime_trio._sideband import KNOWN_EVENT_TYPES
from realtime_trio._transcript import TRANSCRIPT_EVENT_TYPES, Transcript
from realtime_trio._transport import (
    SidebandClosed,
    SidebandRejected,
    SidebandSocket,
    open_sideband_socket,
)
from realtime_trio._transport._trio_websocket import TrioWebSocket
from realtime_trio._transport._websockets import WebSocketClient
from realtime_trio.simulator import DEFAULT_API_KEY, RunningSimulator
from sim_client import (
    FAST_RECONNECTS,
    SimControl,
    live_session,
    new_session,
    open_sockets,
    session_state,
    sockets_opened,
    wait_for_sideband,
    wait_until,
    without_event_id,
)

TRANSPORTS = ["websockets", "trio-websocket"]
TOKEN = "sk-test-transport-token-0123456789"
CLIENTS = {"websockets": WebSocketClient, "trio-websocket": TrioWebSocket}


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def app(start_server: Any, transport: str) -> AsyncIterator[httpx.AsyncClient]:
    url = await start_server(sideband_transport=transport, **FAST_RECONNECTS)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        yield client


async def complete_entries(
    client: httpx.AsyncClient, session_id: str, n: int
) -> list[dict[str, Any]] | None:
    entries = (await session_state(client, session_id))["transcript"]
    done = len(entries) == n and all(e["status"] == "complete" for e in entries)
    return entries if done else None


def test_the_setting_defaults_to_websockets_and_names_the_other() -> None:
    assert Settings(_env_file=None).sideband_transport == "websockets"  # type: ignore[call-arg]
    chosen = Settings(_env_file=None, sideband_transport="Trio-WebSocket")  # type: ignore[call-arg]
    assert chosen.sideband_transport == "trio-websocket"
    with pytest.raises(ValueError, match="sideband_transport"):
        Settings(_env_file=None, sideband_transport="aiohttp")  # type: ignore[call-arg]


def test_a_session_wants_only_known_types_and_every_one_the_transcript_uses() -> None:
    assert LiveSession.wanted_event_types <= KNOWN_EVENT_TYPES
    assert "error" in LiveSession.wanted_event_types
    ignored = [
        kind
        for kind in KNOWN_EVENT_TYPES - TRANSCRIPT_EVENT_TYPES
        if Transcript().apply(
            {"type": kind, "item_id": "item_1", "item": {"id": "item_1", "type": "message"}}
        )
    ]
    assert ignored == []  # a type `apply` acts on is missing from TRANSCRIPT_EVENT_TYPES


# -- end to end, on the simulator -------------------------------------------------------------


async def test_attach_sends_one_session_update(app: httpx.AsyncClient, sim: SimControl) -> None:
    session_id, call_id = await live_session(app, sim)

    (update,) = await sim.client_events(call_id, "session.update")
    assert (
        update["session"]["instructions"] == (await session_state(app, session_id))["instructions"]
    )
    assert len(open_sockets(await sim.call(call_id))) == 1


async def test_the_transcript_is_captured(app: httpx.AsyncClient, sim: SimControl) -> None:
    session_id, call_id = await live_session(app, sim, enableTranscription=True)

    await sim.drive(call_id, "replies", text="Hello Grace, what can I do?")
    await sim.drive(call_id, "user", text="I'm Grace.", transcriptionDelayMs=100)

    entries = await wait_until(lambda: complete_entries(app, session_id, 2))
    assert [(e["role"], e["text"]) for e in entries] == [
        ("user", "I'm Grace."),
        ("assistant", "Hello Grace, what can I do?"),
    ]


async def test_a_tool_call_is_answered_exactly_once(
    app: httpx.AsyncClient, sim: SimControl
) -> None:
    _, call_id = await live_session(app, sim)

    result = await sim.drive(call_id, "tool-call", name="lookup_order", arguments={"order": "7"})

    assert result["responseCreated"] is True
    events = await sim.client_events(call_id)
    outputs = [
        e
        for e in events
        if e["type"] == "conversation.item.create" and e["item"]["call_id"] == result["callId"]
    ]
    assert len(outputs) == 1
    assert [e["type"] for e in events].count("response.create") == 1


async def test_the_output_and_the_next_response_create_leave_in_one_write(
    start_server: Any, sim: SimControl
) -> None:
    """When the response is already done, the last call's output and `response.create` go out
    together: the simulator reads both off the socket at the same moment."""
    url = await start_server(sideband_transport="websockets")
    async with httpx.AsyncClient(base_url=url, timeout=30) as app:
        _, call_id = await live_session(app, sim)
        result = await sim.drive(call_id, "tool-call", name="lookup_order", arguments={})

    timings = result["timings"]
    assert timings["outputReceivedAt"] is not None
    assert timings["outputReceivedAt"] == timings["responseCreateReceivedAt"]


async def test_a_drop_reconnects_and_resends_the_session_update(
    app: httpx.AsyncClient, sim: SimControl
) -> None:
    session_id, call_id = await live_session(app, sim, enableTranscription=True)

    await sim.drive(call_id, "drop")
    await wait_until(lambda: sockets_opened(sim, call_id, 2))
    await wait_for_sideband(app, session_id, "connected")
    await sim.drive(call_id, "replies", text="Yes.")
    await sim.drive(call_id, "user", text="Still there?")

    entries = await wait_until(lambda: complete_entries(app, session_id, 2))
    assert [e["text"] for e in entries] == ["Still there?", "Yes."]
    first, second = await sim.client_events(call_id, "session.update")
    assert without_event_id(first) == without_event_id(second)
    assert first["event_id"] != second["event_id"]


async def test_a_normal_close_from_upstream_ends_in_closed(
    app: httpx.AsyncClient, sim: SimControl
) -> None:
    session_id, call_id = await live_session(app, sim)

    await sim.drive(call_id, "end")
    view = await wait_for_sideband(app, session_id, "closed")
    await trio.sleep(0.3)  # ample time for a (wrong) retry at this backoff

    assert view["sideband"] == {"state": "closed"}
    call = await sim.call(call_id)
    assert len(call["sockets"]) == 1


async def test_a_refused_key_fails_with_upstreams_message(
    app: httpx.AsyncClient, sim: SimControl, simulator: RunningSimulator
) -> None:
    session = await new_session(app)
    call_id = await sim.create_call(session["clientSecret"])
    simulator.state.api_keys.discard(DEFAULT_API_KEY)

    attached = await app.post(
        "/session/call", json={"sessionId": session["sessionId"], "callId": call_id}
    )

    sideband = attached.json()["sideband"]
    assert sideband["state"] == "failed"
    assert sideband["lastError"].startswith("authentication failed (401): ")
    assert len(sideband["lastError"]) > len("authentication failed (401): ")
    assert DEFAULT_API_KEY not in attached.text


async def test_an_unknown_call_fails_with_upstreams_message(app: httpx.AsyncClient) -> None:
    session_id = (await new_session(app))["sessionId"]

    attached = await app.post("/session/call", json={"sessionId": session_id, "callId": "rtc_no"})

    sideband = attached.json()["sideband"]
    assert sideband["state"] == "failed"
    assert sideband["lastError"].startswith("call not found (404): ")
    assert "No session found for the provided call_id" in sideband["lastError"]


async def test_an_over_size_message_closes_with_1009_and_reconnects(
    start_server: Any, sim: SimControl, transport: str
) -> None:
    url = await start_server(
        sideband_transport=transport, sideband_max_message_bytes=64 * 1024, **FAST_RECONNECTS
    )
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        session_id, call_id = await live_session(client, sim)

        await sim.drive(call_id, "send", raw="x" * (100 * 1024))
        call = await wait_until(lambda: sockets_opened(sim, call_id, 2))
        await wait_for_sideband(client, session_id, "connected")
        await sim.drive(call_id, "assistant", text="Back again.")
        entries = await wait_until(lambda: complete_entries(client, session_id, 1))

    assert [e["text"] for e in entries] == ["Back again."]
    first = call["sockets"][0]
    assert (first["open"], first["closeCode"]) == (False, 1009)


async def test_deleting_the_session_closes_with_1000(
    app: httpx.AsyncClient, sim: SimControl
) -> None:
    session_id, call_id = await live_session(app, sim)

    deleted = await app.delete(f"/session/{session_id}")

    assert deleted.status_code == 204
    call = await sim.call(call_id)
    assert [(s["open"], s["closeCode"]) for s in call["sockets"]] == [(False, 1000)]


async def test_debug_events_log_each_type_wanted_or_not(
    start_server: Any, sim: SimControl, transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="realtime_trio.sideband")
    url = await start_server(sideband_transport=transport, sideband_debug_events=True)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        session_id, call_id = await live_session(client, sim)
        await sim.drive(call_id, "assistant", text="Logged.")
        await wait_until(lambda: complete_entries(client, session_id, 1))

    logged = [
        r.getMessage().rsplit(" ", 1)[-1]
        for r in caplog.records
        if r.name == "realtime_trio.sideband" and " event " in r.getMessage()
    ]
    assert "rate_limits.updated" in logged  # counted, never parsed
    assert "response.output_text.delta" in logged  # counted, never parsed
    assert "response.output_text.done" in logged  # parsed and handed over
    assert "session.created" in logged


# -- a scripted upstream ----------------------------------------------------------------------

Script = Callable[["Upstream"], Awaitable[None]]


class Upstream:
    """One accepted connection of the scripted upstream, as seen from the server side."""

    def __init__(self, stream: trio.SocketStream, protocol: ServerProtocol) -> None:
        self.stream = stream
        self.protocol = protocol
        self.request: Request | None = None
        self.received: list[Frame] = []

    async def handshake(self, *, reject: tuple[int, dict[str, Any]] | None = None) -> None:
        while self.request is None:
            self.protocol.receive_data(await self.stream.receive_some(65536))
            for event in self.protocol.events_received():
                self.request = event  # type: ignore[assignment]
        if reject is None:
            response = self.protocol.accept(self.request)
        else:
            status, body = reject
            response = Response(
                status,
                "Refused",
                Headers([("Content-Type", "application/json")]),
                json.dumps(body).encode(),
            )
            response.headers["Content-Length"] = str(len(response.body))
        self.protocol.send_response(response)
        await self.flush()

    async def send_raw(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def flush(self) -> None:
        data = b"".join(self.protocol.data_to_send())
        if data:
            await self.stream.send_all(data)

    async def receive_until(self, opcode: Opcode) -> Frame:
        """Read the client's frames until one with *opcode* (all are kept in `received`)."""
        while True:
            for frame in self.received:
                if frame.opcode is opcode:
                    return frame
            data = await self.stream.receive_some(65536)
            if not data:
                raise AssertionError(f"the client closed without sending {opcode.name}")
            self.protocol.receive_data(data)
            self.received.extend(e for e in self.protocol.events_received() if isinstance(e, Frame))


def server_frame(opcode: Opcode, data: bytes, *, fin: bool = True) -> bytes:
    return Frame(opcode, data, fin).serialize(mask=False)


@pytest.fixture
async def upstream(nursery: trio.Nursery) -> Callable[[Script], Awaitable[str]]:
    """Start an upstream that plays *script* on each connection; its `ws://` URL."""

    async def start(script: Script) -> str:
        async def handle(stream: trio.SocketStream) -> None:
            async with stream:
                await script(Upstream(stream, ServerProtocol()))

        listeners = await nursery.start(partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        return f"ws://127.0.0.1:{port}/v1/realtime?call_id=rtc_1"

    return start


async def receive(socket: SidebandSocket, n: int) -> list[str]:
    messages: list[str] = []
    with trio.fail_after(5):
        while len(messages) < n:
            messages.extend(m.decode() for m in await socket.receive_many())
    return messages


def connect(
    url: str, transport: str, *, max_message_size: int = 1 << 20, **deadlines: float
) -> Any:
    return open_sideband_socket(
        url,
        token=TOKEN,
        max_message_size=max_message_size,
        connect_timeout=5,
        transport=transport,  # type: ignore[arg-type]
        **deadlines,
    )


async def test_the_handshake_carries_the_token_and_offers_no_extension(
    upstream: Any, transport: str
) -> None:
    seen: list[Request] = []

    async def script(peer: Upstream) -> None:
        await peer.handshake()
        assert peer.request is not None
        seen.append(peer.request)
        await peer.receive_until(Opcode.CLOSE)

    async with connect(await upstream(script), transport) as socket:
        assert isinstance(socket, CLIENTS[transport])

    (request,) = seen
    assert request.path == "/v1/realtime?call_id=rtc_1"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert "Sec-WebSocket-Extensions" not in request.headers


async def test_pings_are_answered_and_fragments_joined(upstream: Any, transport: str) -> None:
    pongs: list[bytes] = []
    done = trio.Event()

    async def script(peer: Upstream) -> None:
        await peer.handshake()
        await peer.send_raw(
            server_frame(Opcode.TEXT, b'{"n":1}')
            + server_frame(Opcode.PING, b"still there?")
            + server_frame(Opcode.TEXT, b'{"n":', fin=False)
            + server_frame(Opcode.PING, b"mid-message")
            + server_frame(Opcode.CONT, b"2}", fin=True)
            + server_frame(Opcode.BINARY, b'{"n":3}')
        )
        await peer.receive_until(Opcode.CLOSE)
        pongs.extend(f.data for f in peer.received if f.opcode is Opcode.PONG)
        done.set()

    async with connect(await upstream(script), transport) as socket:
        messages = await receive(socket, 3)

    with trio.fail_after(5):
        await done.wait()
    assert messages == ['{"n":1}', '{"n":2}', '{"n":3}']
    assert pongs == [b"still there?", b"mid-message"]


async def test_a_close_from_upstream_is_replied_to_and_raised(
    upstream: Any, transport: str
) -> None:
    replies: list[Close] = []

    async def script(peer: Upstream) -> None:
        await peer.handshake()
        await peer.send_raw(
            server_frame(Opcode.TEXT, b'{"last":true}')
            + server_frame(Opcode.CLOSE, Close(1000, "call ended").serialize())
        )
        replies.append(Close.parse((await peer.receive_until(Opcode.CLOSE)).data))

    with pytest.raises(SidebandClosed) as raised:  # noqa: PT012 - the message, then the close
        async with connect(await upstream(script), transport) as socket:
            assert await receive(socket, 1) == ['{"last":true}']
            await receive(socket, 1)

    assert (raised.value.code, raised.value.reason) == (1000, "call ended")
    assert [(c.code, c.reason) for c in replies] == [(1000, "call ended")]


async def test_a_bare_tcp_close_is_1006(upstream: Any, transport: str) -> None:
    async def script(peer: Upstream) -> None:
        await peer.handshake()
        cut_short = server_frame(Opcode.TEXT, b'{"partial":true}')[:5]
        await peer.send_raw(server_frame(Opcode.TEXT, b"{}") + cut_short)

    with pytest.raises(SidebandClosed) as raised:  # noqa: PT012
        async with connect(await upstream(script), transport) as socket:
            assert await receive(socket, 1) == ["{}"]
            await receive(socket, 1)

    assert raised.value.code == 1006


async def test_leaving_the_block_sends_a_normal_close(upstream: Any, transport: str) -> None:
    closes: list[Close] = []

    async def script(peer: Upstream) -> None:
        await peer.handshake()
        closes.append(Close.parse((await peer.receive_until(Opcode.CLOSE)).data))
        await peer.flush()  # the protocol's reply

    with trio.CancelScope() as scope:
        async with connect(await upstream(script), transport) as socket:
            await socket.send({"type": "session.update", "session": {"type": "realtime"}})
            scope.cancel()
            await trio.sleep_forever()

    assert [c.code for c in closes] == [1000]


async def test_an_over_size_message_closes_with_1009(upstream: Any, transport: str) -> None:
    closes: list[Close] = []

    async def script(peer: Upstream) -> None:
        await peer.handshake()
        await peer.send_raw(server_frame(Opcode.TEXT, b"{}" * 600))
        closes.append(Close.parse((await peer.receive_until(Opcode.CLOSE)).data))

    with pytest.raises(SidebandClosed) as raised:
        async with connect(await upstream(script), transport, max_message_size=1000) as socket:
            await receive(socket, 1)

    assert raised.value.code == 1009
    assert [c.code for c in closes] == [1009]


@pytest.mark.parametrize("status", [401, 404])
async def test_a_refused_handshake_carries_upstreams_message_without_the_token(
    upstream: Any, transport: str, status: int
) -> None:
    body = {"error": {"message": f"Nope for Bearer {TOKEN}.", "type": "invalid_request_error"}}

    async def script(peer: Upstream) -> None:
        await peer.handshake(reject=(status, body))

    with pytest.raises(SidebandRejected) as raised:
        async with connect(await upstream(script), transport):
            pass

    assert raised.value.status_code == status
    assert raised.value.message.startswith("Nope for Bearer ")
    assert TOKEN not in str(raised.value)


async def test_sends_go_out_in_order_from_concurrent_tasks(upstream: Any, transport: str) -> None:
    received: list[dict[str, Any]] = []

    async def script(peer: Upstream) -> None:
        await peer.handshake()
        await peer.receive_until(Opcode.CLOSE)
        received.extend(json.loads(f.data) for f in peer.received if f.opcode is Opcode.TEXT)

    async with (
        connect(await upstream(script), transport) as socket,
        trio.open_nursery() as nursery,
    ):
        for task in range(4):
            nursery.start_soon(_send_numbered, socket, task)

    assert len(received) == 4 * 50
    for task in range(4):
        assert [e["n"] for e in received if e["task"] == task] == list(range(50))


async def _send_numbered(socket: SidebandSocket, task: int) -> None:
    for n in range(50):
        await socket.send({"type": "conversation.item.create", "task": task, "n": n})


# -- liveness ---------------------------------------------------------------------------------


async def test_a_quiet_socket_is_pinged_and_kept_while_it_answers(
    upstream: Any, transport: str
) -> None:
    async def script(peer: Upstream) -> None:
        await peer.handshake()
        await peer.receive_until(Opcode.PING)
        await peer.flush()  # the protocol's pong
        await peer.send_raw(server_frame(Opcode.TEXT, b'{"after":"pong"}'))
        await peer.receive_until(Opcode.CLOSE)

    async with connect(
        await upstream(script), transport, ping_interval=0.2, ping_timeout=5
    ) as socket:
        assert await receive(socket, 1) == ['{"after":"pong"}']


async def test_a_ping_left_unanswered_drops_the_socket(upstream: Any, transport: str) -> None:
    async def script(peer: Upstream) -> None:
        await peer.handshake()
        await trio.sleep_forever()  # reads nothing, answers nothing: a half-open connection

    with pytest.raises(SidebandClosed) as raised:  # noqa: PT012 - the block is the wait
        async with connect(
            await upstream(script), transport, ping_interval=0.2, ping_timeout=0.2
        ) as socket:
            with trio.fail_after(5):
                await socket.receive_many()

    assert raised.value.code == 1006
    assert raised.value.reason == "no answer to a ping within 0.2s"


async def test_a_send_the_peer_does_not_read_fails_within_its_deadline(
    upstream: Any, transport: str
) -> None:
    async def script(peer: Upstream) -> None:
        await peer.handshake()
        await trio.sleep_forever()  # stops reading: the socket's buffers fill up

    note = {
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": "system",
            "content": [{"type": "input_text", "text": "x" * 65536}],
        },
    }
    with pytest.raises(SidebandClosed) as raised:  # noqa: PT012 - the block is the sending
        async with connect(await upstream(script), transport, send_timeout=0.3) as socket:
            with trio.fail_after(30):
                while True:
                    await socket.send(note)

    assert raised.value.code == 1006
    assert raised.value.reason == "a send did not finish within 0.3s"
