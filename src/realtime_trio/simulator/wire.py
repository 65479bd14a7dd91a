"""What ASGI cannot tell the simulator about a WebSocket, observed on Hypercorn's connection.

Two things the simulator must know or do are outside ASGI:

- **The client's close code.** Hypercorn reports every close the client starts as
  `websocket.disconnect` with code 1006, whatever the client's close frame said, so a test could
  not tell a clean 1000 from a dropped connection.
- **An abrupt drop.** ASGI can only close with a close frame (or, if the app gives up after
  accepting, Hypercorn sends 1011); a real network drop sends no close frame at all.

`tap_websockets` wraps the ASGI app. Once a WebSocket is accepted it wraps the wsproto
connection of Hypercorn's stream (the object behind the ASGI `send` callable) to read the code
of the client's close frame, and, when asked, to keep the simulator's own close frame off the
wire, so that closing becomes a bare TCP close, as a network drop looks to the client. When the
server is not Hypercorn, or its internals differ, the tap is inert: the close code is what ASGI
reported, and a drop falls back to a close frame with 1011.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from wsproto.events import CloseConnection

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
SCOPE_KEY = "realtime_trio.simulator.wire"
ABNORMAL_CLOSURE = 1006


class WireTap:
    """One WebSocket's view below ASGI; found in the scope under `SCOPE_KEY`."""

    def __init__(self) -> None:
        self.client_close_code: int | None = None
        self.disconnect_code: int | None = None
        self.attached = False
        self.swallow_close_frame = False

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
        if connection is None or not all(
            hasattr(connection, name) for name in ("events", "send", "receive_data", "state")
        ):
            return
        stream.connection = _TappedConnection(connection, self)
        self.attached = True


class _TappedConnection:
    """A wsproto `Connection` that reports close frames to a `WireTap` and can swallow its own."""

    def __init__(self, inner: Any, tap: WireTap) -> None:
        self._inner = inner
        self._tap = tap

    def events(self) -> Iterator[Any]:
        for event in self._inner.events():
            if isinstance(event, CloseConnection) and self._tap.client_close_code is None:
                self._tap.client_close_code = event.code
            yield event

    def send(self, event: Any) -> bytes:
        data: bytes = self._inner.send(event)
        if isinstance(event, CloseConnection) and self._tap.swallow_close_frame:
            return b""
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def tap_websockets(app: ASGIApp) -> ASGIApp:
    """*app* with a `WireTap` in the scope of every WebSocket connection."""

    async def tapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "websocket":
            await app(scope, receive, send)
            return
        tap = WireTap()
        scope[SCOPE_KEY] = tap

        async def receive_and_note() -> Any:
            message = await receive()
            if message.get("type") == "websocket.disconnect":
                tap.disconnect_code = message.get("code")
            return message

        async def send_and_attach(message: Any) -> None:
            await send(message)
            if message.get("type") == "websocket.accept":
                tap.attach(send)

        await app(scope, receive_and_note, send_and_attach)

    return tapped
