"""Serving one accepted sideband WebSocket of a call: a sender task and a receive loop.

The sender drains the socket's bounded outbox (events queued by the call, in order) onto the
wire, until it reaches the `Close` the call queued after the last event; the receive loop hands
each frame to `client_events.handle_frame`. Both live in the handler's nursery, so neither
outlives the connection. When the client goes away first, Quart cancels the handler, and the
`finally` records the close code the client sent.

Pre-encoded frames (`RawFrames`) are written chunk by chunk straight to the transport through
the wire tap, or, where there is none, sent frame by frame through ASGI; either way the sender
stamps when they went, and marks them finished even if the socket ends before it got to them.
Events queued together (a whole tool call, say) are likewise encoded here and written in one
go through the tap: each write through Hypercorn costs far more than encoding a frame, and
sending them one by one would put the simulator's own pace between, e.g., a function call's
`arguments.done` and its `response.done`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import trio

from .calls import INTERNAL_ERROR, Close, Outgoing, SimCall, SimSocket, Stamped
from .client_events import handle_frame
from .frames import RawFrames, encode_text_frames, frame_texts
from .wire import ABNORMAL_CLOSURE, WireTap

CLOSE_TIMEOUT_SECONDS = 5.0
BATCH_FRAMES = 256  # text frames queued together and written in one go, at most

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
                nursery.start_soon(_receive_frames, call, socket, websocket, tap)
                close = await _send_frames(websocket, tap, outbox)
                nursery.cancel_scope.cancel()
        code = await _close(websocket, tap, close or Close(INTERNAL_ERROR, abrupt=True))
        call.socket_closed(socket, code)
    finally:
        call.socket_closed(socket, tap.observed_close_code() if tap else None)


async def _send_frames(
    websocket: Any, tap: WireTap | None, outbox: trio.MemoryReceiveChannel[Outgoing]
) -> Close | None:
    """Write queued frames until the queued `Close` (returned), or the outbox is closed."""
    pending: Outgoing | None = None
    async with outbox:
        try:
            while True:
                if pending is None:
                    try:
                        pending = await outbox.receive()
                    except trio.EndOfChannel:
                        return None
                item, pending = pending, None
                if isinstance(item, Close):
                    return item
                if isinstance(item, RawFrames):
                    await _send_raw_frames(websocket, tap, item)
                    continue
                batch = [item]
                if tap is not None and tap.can_send_raw:
                    pending = _take_texts(outbox, batch)
                await _send_texts(websocket, tap, batch)
        finally:
            _abandon(outbox, pending)


def _take_texts(
    outbox: trio.MemoryReceiveChannel[Outgoing], batch: list[str | Stamped]
) -> Outgoing | None:
    """Move the text frames queued right now onto *batch* (up to `BATCH_FRAMES`); the item that
    stopped it, if any, to send next."""
    while len(batch) < BATCH_FRAMES:
        try:
            item = outbox.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel):
            return None
        if not isinstance(item, str | Stamped):
            return item
        batch.append(item)
    return None


async def _send_texts(websocket: Any, tap: WireTap | None, batch: list[str | Stamped]) -> None:
    """Send *batch*'s frames: one by one through ASGI, or, when several were queued together,
    encoded here and written at once through the tap (as a server writing back-to-back events
    does; the frames are the same).

    Each `Stamped` frame is stamped just before the write that carries it: after the write, the
    sender may resume only once other tasks have run (the reader among them, stamping the
    client's answer), so a stamp taken then could make a round trip look shorter than it was;
    taken before, a latency measured from it errs long, by the write itself, never short.
    """
    texts = [item.text if isinstance(item, Stamped) else item for item in batch]
    if len(texts) == 1 or tap is None:
        for item, text in zip(batch, texts, strict=True):
            if isinstance(item, Stamped):
                item.on_sent(time.monotonic())
            await websocket.send(text)
        return
    frames = encode_text_frames(text.encode() for text in texts)
    sent_at = time.monotonic()
    for item in batch:
        if isinstance(item, Stamped):
            item.on_sent(sent_at)
    for chunk in frames.chunks:
        await tap.send_raw(websocket, chunk)


async def _send_raw_frames(websocket: Any, tap: WireTap | None, item: RawFrames) -> None:
    """Write *item*'s chunks as they are through the tap, else its frames one by one."""
    try:
        item.first_sent_at = time.monotonic()
        for index, chunk in enumerate(item.frames.chunks):
            if tap is not None and tap.can_send_raw:
                await tap.send_raw(websocket, chunk)
            else:
                for text in frame_texts(chunk):
                    await websocket.send(text)
            item.chunk_sent(index)
        item.last_sent_at = time.monotonic()
        item.complete = True
    finally:
        item.finished.set()


def _abandon(outbox: trio.MemoryReceiveChannel[Outgoing], pending: Outgoing | None) -> None:
    """Mark what is left (*pending*, then *outbox*) finished, unsent, so nobody waits for it."""
    while True:
        if isinstance(pending, RawFrames):
            pending.finished.set()
        try:
            pending = outbox.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
            return


async def _receive_frames(
    call: SimCall, socket: SimSocket, websocket: Any, tap: WireTap | None
) -> None:
    while True:
        frame = await websocket.receive()
        arrived_at = tap.take_arrival() if tap is not None else None
        if arrived_at is None:
            arrived_at = time.monotonic()
        try:
            handle_frame(call, socket, frame, arrived_at=arrived_at)
        except Exception:
            # A simulator bug: say so on the wire (1011) rather than carry on half-broken.
            logger.exception("call %s: failed on a client event; closing with 1011", call.call_id)
            socket.queue(Close(INTERNAL_ERROR))
            return


async def _close(websocket: Any, tap: WireTap | None, close: Close) -> int:
    """Close as *close* asks (code and reason); the close code as the client will observe it.

    An abrupt close keeps the close frame off the wire when the tap can (the client then sees
    its connection end with no close frame: 1006); otherwise it is a close frame with its code.
    """
    observed = close.code
    if close.abrupt and tap is not None and tap.suppress_close_frame():
        observed = ABNORMAL_CLOSURE
    with trio.move_on_after(CLOSE_TIMEOUT_SECONDS):
        await websocket.close(close.code, close.reason)
    return observed
