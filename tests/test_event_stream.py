"""`GET /session/{id}/events`: a session's events as Server-Sent Events, to several listeners;
one that stops reading is dropped, and publishing never waits for it."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import trio

from realtime_trio._session_events import SessionEvents
from realtime_trio.testing import StartServer, open_call
from sim_client import SimControl, wait_until


async def listen(
    url: str,
    session_id: str,
    into: list[dict[str, Any]],
    ended: trio.Event | None = None,
    *,
    task_status: Any,
) -> None:
    """Read the session's stream into *into*, one parsed `data:` object at a time; set *ended*
    when the stream ends."""
    async with (
        httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(30, read=120)) as client,
        client.stream("GET", f"/session/{session_id}/events") as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        task_status.started()
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                into.append(json.loads(line[len("data: ") :]))
    if ended is not None:
        ended.set()


def of_type(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind]


async def test_two_listeners_see_a_turn_and_a_tool_call_as_they_happen(
    start_server: StartServer, sim: SimControl, nursery: trio.Nursery
) -> None:
    url = await start_server()
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        call = await open_call(client, sim, enableTranscription=True)
        streams: list[list[dict[str, Any]]] = [[], []]
        ends = [trio.Event(), trio.Event()]
        for into, ended in zip(streams, ends, strict=True):
            await nursery.start(listen, url, call.session_id, into, ended)

        await sim.drive(call.call_id, "replies", text="Hello Ada!")
        await sim.drive(call.call_id, "user", text="Hi, I'm Ada.")
        answer = await call.call_tool("extract_profile")

        async def seen_everything(events: list[dict[str, Any]]) -> bool:
            texts = [e["entry"]["text"] for e in of_type(events, "transcript.completed")]
            return {"Hi, I'm Ada.", "Hello Ada!"} <= set(texts) and bool(
                of_type(events, "tool_call")
            )

        for events in streams:
            await wait_until(lambda events=events: seen_everything(events))
            first = events[0]
            assert first["type"] == "snapshot"
            assert first["session"]["sessionId"] == call.session_id
            [tool_call] = of_type(events, "tool_call")
            assert tool_call["callId"] == answer.call_id
            assert tool_call["name"] == "extract_profile"
            assert tool_call["output"] == answer.output
            assert tool_call["outcome"] == "ok"
            assert tool_call["ms"] >= 0
            assert of_type(events, "usage")[-1]["usage"]["responses"] >= 1
            assert of_type(events, "profile")[-1]["profile"]["first_name"] == "Ada"
            assert "first_name: Ada" in of_type(events, "instructions")[-1]["instructions"]
        assert streams[0] == streams[1]  # the same events, in the same order

        # The session ends: every stream ends with it.
        assert (await client.delete(f"/session/{call.session_id}")).status_code == 204
        with trio.fail_after(10):
            for ended in ends:
                await ended.wait()


async def test_a_listener_that_stops_reading_is_dropped_and_publishing_never_waits() -> None:
    events = SessionEvents("s1", buffer=4)
    with events.listen() as stalled, events.listen() as reading:
        for n in range(10):  # never waits, whoever does not read
            events.publish({"type": "usage", "n": n})
            assert (await reading.receive())["n"] == n
        # The stalled listener got what fitted its buffer, then its stream ended.
        assert [(await stalled.receive())["n"] for _ in range(4)] == [0, 1, 2, 3]
        with pytest.raises(trio.EndOfChannel):
            await stalled.receive()
        assert events  # the reading listener is still there
        events.publish({"type": "usage", "n": 10})
        assert (await reading.receive())["n"] == 10


async def open_stalled_listener(url: str, session_id: str) -> trio.SocketStream:
    """A raw HTTP/1.1 request for the session's stream from a socket with a tiny receive
    buffer, read only until its first event: the server then has a reader that never reads."""
    address = httpx.URL(url)
    sock = trio.socket.socket()
    sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF, 4096)
    await sock.connect((address.host, address.port))
    stream = trio.SocketStream(sock)
    request = f"GET /session/{session_id}/events HTTP/1.1\r\nHost: {address.host}\r\n\r\n"
    await stream.send_all(request.encode())
    received = b""
    while b"data: " not in received:
        received += await stream.receive_some()
    assert received.startswith(b"HTTP/1.1 200")
    return stream


async def read_to_end_of_stream(stream: trio.SocketStream) -> bytes:
    """Everything left of a chunked response, up to its last chunk."""
    received = b""
    while not received.endswith(b"\r\n0\r\n\r\n"):
        chunk = await stream.receive_some()
        assert chunk, "the connection closed before the stream ended"
        received += chunk
    return received


async def test_a_stalled_listener_is_dropped_over_the_wire_while_the_call_goes_on(
    start_server: StartServer, sim: SimControl, nursery: trio.Nursery
) -> None:
    url = await start_server()
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        call = await open_call(client, sim, enableTranscription=True)
        stalled = await open_stalled_listener(url, call.session_id)

        # Far more events than a listener's buffer and the sockets between can hold, then a
        # tool call queued right behind them: it is answered though nobody reads the stream.
        blast = await sim.drive(
            call.call_id,
            "blast",
            count=20_000,
            marker={"name": "extract_profile", "arguments": {}},
        )
        assert blast["marker"]["output"] is not None
        assert json.loads(blast["marker"]["output"])["ok"] is True

        # The stalled listener's stream was ended by the server, not by the session.
        with trio.fail_after(30):
            rest = await read_to_end_of_stream(stalled)
        await stalled.aclose()
        assert rest.count(b"data: ") < 20_000
        view = (await client.get(f"/session/{call.session_id}")).json()
        assert view["sideband"]["state"] == "connected"
        assert view["transcript"]

        # A listener that reads still gets what happens next.
        events: list[dict[str, Any]] = []
        await nursery.start(listen, url, call.session_id, events)
        await sim.drive(call.call_id, "user", text="Still here?")

        async def heard() -> bool:
            texts = [e["entry"]["text"] for e in of_type(events, "transcript.completed")]
            return "Still here?" in texts

        await wait_until(heard)
