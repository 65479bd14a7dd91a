"""What ASGI cannot tell the simulator about a WebSocket, observed on Hypercorn's connection.

Four things the simulator must know or do are outside ASGI:

- **The client's close code.** Hypercorn reports every close the client starts as
  `websocket.disconnect` with code 1006, whatever the client's close frame said, so a test could
  not tell a clean 1000 from a dropped connection.
- **An abrupt drop.** ASGI can only close with a close frame (or, if the app gives up after
  accepting, Hypercorn sends 1011); a real network drop sends no close frame at all.
- **Bytes already framed.** ASGI sends one message at a time, which Hypercorn encodes with
  wsproto and writes: far too slow for a benchmark's blast of pre-encoded frames (`frames.py`).
- **When a frame arrived.** A message reaches the app a few task switches after Hypercorn read
  it, which a busy simulator would count into a benchmark's latencies.

`tap_websockets` wraps the ASGI app. Once a WebSocket is accepted it wraps the wsproto
connection of Hypercorn's stream (the object behind the ASGI `send` callable) to read the code
of the client's close frame; when asked, to keep the simulator's own close frame off the wire,
so that closing becomes a bare TCP close, as a network drop looks to the client; to note the
`time.monotonic()` at which the bytes of each client message were read (`take_arrival`); and
to write pre-encoded frames: `send_raw` sends a placeholder message through ASGI, and the
wrapped connection hands Hypercorn the pending bytes in place of encoding the placeholder, so
they take Hypercorn's own write path (one `send_all`, in order with everything else it writes).
When the server is not Hypercorn, or its internals differ, the tap is inert: the close code is
what ASGI reported, a drop falls back to a close frame with 1011, messages are stamped when the
app receives them, and `can_send_raw` is False.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Coroutine, Iterator
from typing import Any, Protocol, cast

from hypercorn.typing import (
    ASGIReceiveCallable,
    ASGIReceiveEvent,
    ASGISendCallable,
    ASGISendEvent,
    Scope,
)
from wsproto.connection import ConnectionState
from wsproto.events import CloseConnection, Message, TextMessage
from wsproto.utilities import LocalProtocolError

SCOPE_KEY = "realtime_trio.simulator.wire"
ABNORMAL_CLOSURE = 1006
RAW_PLACEHOLDER = "\x00realtime-trio: pre-encoded frames\x00"


class ASGIApp(Protocol):
    """An ASGI app as Quart types its `asgi_app`, the method middleware replaces."""

    def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> Coroutine[Any, Any, None]: ...


class WireTap:
    """One WebSocket's view below ASGI; found in the scope under `SCOPE_KEY`."""

    def __init__(self) -> None:
        self.client_close_code: int | None = None
        self.disconnect_code: int | None = None
        self.attached = False
        self.swallow_close_frame = False
        self.pending_raw: bytes | None = None
        self._read_at = 0.0
        self._arrivals: deque[float] = deque()

    def take_arrival(self) -> float | None:
        """When the bytes ending the oldest client message not yet taken were read off the
        socket (one per message the app receives, in order); None if the tap did not see it."""
        return self._arrivals.popleft() if self._arrivals else None

    def bytes_read(self) -> None:
        self._read_at = time.monotonic()

    def message_parsed(self) -> None:
        self._arrivals.append(self._read_at)

    @property
    def can_send_raw(self) -> bool:
        """Whether `send_raw` can write bytes as they are (the tap attached to Hypercorn)."""
        return self.attached

    async def send_raw(self, websocket: Any, data: bytes) -> None:
        """Write *data*, complete server frames, to the connection as it is; blocks until
        written (as `websocket.send` does). Only with `can_send_raw`; a closed connection
        writes nothing, as for any message."""
        if not self.attached:
            raise RuntimeError("the wire tap is not attached: send the frames one by one")
        self.pending_raw = data
        try:
            await websocket.send(RAW_PLACEHOLDER)
        finally:
            self.pending_raw = None

    def observed_close_code(self) -> int:
        """The code the client closed with; 1006 if it sent no close frame."""
        if self.client_close_code is not None:
            return self.client_close_code
        return self.disconnect_code or ABNORMAL_CLOSURE

    def suppress_close_frame(self) -> bool:
        """Keep the next close frame off the wire; False if the tap could not attach."""
        self.swallow_close_frame = self.attached
        return self.attached

    def attach(self, send: Any) -> None:
        """Wrap the wsproto connection of the Hypercorn stream *send* belongs to, if any."""
        stream = getattr(send, "__self__", None)
        connection = getattr(stream, "connection", None)
        if stream is None or not all(
            hasattr(connection, name) for name in ("events", "send", "receive_data", "state")
        ):
            return
        stream.connection = _TappedConnection(connection, self)
        self.attached = True


class _TappedConnection:
    """A wsproto `Connection` that reports close frames and when messages were read to a
    `WireTap`, can swallow its own close frame, and hands over the tap's pending raw bytes for
    its placeholder message."""

    def __init__(self, inner: Any, tap: WireTap) -> None:
        self._inner = inner
        self._tap = tap

    def events(self) -> Iterator[Any]:
        for event in self._inner.events():
            if isinstance(event, Message) and event.message_finished:
                self._tap.message_parsed()
            elif isinstance(event, CloseConnection) and self._tap.client_close_code is None:
                self._tap.client_close_code = event.code
            yield event

    def receive_data(self, data: bytes | None) -> None:
        self._tap.bytes_read()
        self._inner.receive_data(data)

    def send(self, event: Any) -> bytes:
        raw = self._tap.pending_raw
        if raw is not None and isinstance(event, TextMessage) and event.data == RAW_PLACEHOLDER:
            # Never through wsproto: a permessage-deflate compressor would take the placeholder
            # into its window, which the client never sees.
            if self._inner.state is not ConnectionState.OPEN:
                raise LocalProtocolError(f"cannot send in state {self._inner.state}")
            self._tap.pending_raw = None
            return raw
        data: bytes = self._inner.send(event)
        if isinstance(event, CloseConnection) and self._tap.swallow_close_frame:
            return b""
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def tap_websockets(app: ASGIApp) -> ASGIApp:
    """*app* with a `WireTap` in the scope of every WebSocket connection."""

    async def tapped(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope.get("type") != "websocket":
            await app(scope, receive, send)
            return
        tap = WireTap()
        # ASGI lets middleware add keys to a scope; Hypercorn's TypedDicts declare none
        cast(dict[str, Any], scope)[SCOPE_KEY] = tap

        async def receive_and_note() -> ASGIReceiveEvent:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                tap.disconnect_code = message.get("code")
            return message

        async def send_and_attach(message: ASGISendEvent) -> None:
            await send(message)
            if message.get("type") == "websocket.accept":
                tap.attach(send)

        await app(scope, receive_and_note, send_and_attach)

    return tapped
