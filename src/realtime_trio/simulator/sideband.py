"""Serving one accepted sideband WebSocket of a call: a sender task and a receive loop.

The sender drains the socket's bounded outbox (events queued by the call, in order) onto the
wire, until it reaches the `Close` the call queued after the last event; the receive loop hands
each frame to `client_events.handle_frame`. Both live in the handler's nursery, so neither
outlives the connection. When the client goes away first, Quart cancels the handler, and the
`finally` records the close code the client sent.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from .calls import INTERNAL_ERROR, Close, Outgoing, SimCall, SimSocket
from .client_events import handle_frame
from .wire import ABNORMAL_CLOSURE, WireTap

CLOSE_TIMEOUT_SECONDS = 5.0

logger = logging.getLogger(__name__)


async def serve_socket(call: SimCall, websocket: Any, tap: WireTap | None, *, auth: str) -> None:
    """Attach an accepted *websocket* to *call* and serve it until either side closes it.

    *auth* says what the client authenticated with (`"api_key"` or `"client_secret"`).

    Raises:
        CallEnded: the call ended before the socket could attach.
    """
    socket, outbox = call.attach_socket(auth=auth)
    try:
        close: Close | None = None
        with socket.cancel_scope:  # cancelled when the client lets its outbox overflow
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_receive_frames, call, socket, websocket)
                close = await _send_frames(websocket, outbox)
                nursery.cancel_scope.cancel()
        code = await _close(websocket, tap, close or Close(INTERNAL_ERROR, abrupt=True))
        call.socket_closed(socket, code)
    finally:
        call.socket_closed(socket, tap.observed_close_code() if tap else None)


async def _send_frames(websocket: Any, outbox: trio.MemoryReceiveChannel[Outgoing]) -> Close | None:
    """Write queued frames until the queued `Close` (returned), or the outbox is closed."""
    async with outbox:
        async for item in outbox:
            if isinstance(item, Close):
                return item
            await websocket.send(item)
    return None


async def _receive_frames(call: SimCall, socket: SimSocket, websocket: Any) -> None:
    while True:
        frame = await websocket.receive()
        try:
            handle_frame(call, socket, frame)
        except Exception:
            # A simulator bug: say so on the wire (1011) rather than carry on half-broken.
            logger.exception("call %s: failed on a client event; closing with 1011", call.call_id)
            socket.queue(Close(INTERNAL_ERROR))
            return


async def _close(websocket: Any, tap: WireTap | None, close: Close) -> int:
    """Close as *close* asks; the close code as the client will observe it.

    An abrupt close keeps the close frame off the wire when the tap can (the client then sees
    its connection end with no close frame: 1006); otherwise it is a close frame with its code.
    """
    observed = close.code
    if close.abrupt and tap is not None and tap.suppress_close_frame():
        observed = ABNORMAL_CLOSURE
    with trio.move_on_after(CLOSE_TIMEOUT_SECONDS):
        await websocket.close(close.code)
    return observed
