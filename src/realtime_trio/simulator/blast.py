"""A blast: a call's sockets sent `count` server events as fast as the wire takes them.

A benchmark measures how fast a server ingests a sideband, so the simulator must never be the
bottleneck. The events (the conversation mix of `mix.py`) are rendered and encoded as frames
(`frames.py`) before any timing starts, in a worker thread so the simulator's other calls go
on meanwhile, then queued on each socket as one outbox item that its sender writes chunk by
chunk straight to the transport. The frames are wire-only: the call's conversation model does
not change.

A marker tool call can follow the blast, exactly as `SimCall.tool_call` makes one, queued
right behind it: a server's answer to it tells when the server got through everything before.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import trio

from .calls import FunctionCall, SimCall, ToolCallResult
from .frames import EncodedFrames, RawFrames, encode_text_frames
from .mix import ConversationMix
from .turns import ActiveResponse

logger = logging.getLogger(__name__)


class NoOpenSocket(Exception):
    """The call has no open socket to blast on (or not the one asked for)."""


@dataclass(frozen=True)
class BlastResult:
    """What the sockets' senders did with a blast, and the marker tool call's result."""

    count: int
    sent: list[RawFrames]
    marker: ToolCallResult | None

    def as_json(self) -> dict[str, Any]:
        """The control API's answer; times are `time.monotonic()` (null if never reached)."""
        first = [item.first_sent_at for item in self.sent if item.first_sent_at is not None]
        complete = bool(self.sent) and all(item.complete for item in self.sent)
        return {
            "count": self.count,
            "frames": sum(item.frames_sent for item in self.sent),
            "bytes": sum(item.payload_bytes_sent for item in self.sent),
            "wireBytes": sum(item.wire_bytes_sent for item in self.sent),
            "firstSentAt": min(first) if first else None,
            "lastSentAt": max(i.last_sent_at or 0.0 for i in self.sent) if complete else None,
            "marker": self.marker.as_json() if self.marker else None,
        }


async def blast(
    call: SimCall,
    count: int,
    *,
    marker: FunctionCall | None = None,
    socket_id: int | None = None,
    timeout_seconds: float = 60.0,
) -> BlastResult:
    """Send *count* events of the conversation mix to each open socket of *call* (or socket
    *socket_id* only), then make the *marker* tool call and wait for the client's answer.

    Blocks until every socket's sender wrote the whole blast and the marker was answered (its
    `function_call_output` and the `response.create` after it), or *timeout_seconds* passed
    since the blast was queued: the result says how far things got.

    Raises:
        CallEnded: the call is over.
        NoOpenSocket: there is no socket to send to.
        ActiveResponse: a *marker* was asked for while a response is in progress.
    """
    _check(call, marker, socket_id)
    stream = ConversationMix().stream(
        conversation_id=call.conversation_id,
        session=call.session,
        previous_item_id=call.conversation.last_id,
    )
    started = time.monotonic()
    frames: EncodedFrames = await trio.to_thread.run_sync(
        lambda: encode_text_frames(stream.payloads(count))
    )
    logger.info(
        "call %s: %d events encoded in %.3f s (%d bytes on the wire)",
        call.call_id,
        count,
        time.monotonic() - started,
        frames.wire_bytes,
    )
    _check(call, marker, socket_id)  # the call may have moved on meanwhile
    # No checkpoint from here to the marker's start: it is queued right behind the blast.
    sent = call.send_frames(frames, socket_id=socket_id)
    result = call.start_tool_call(marker.name, marker.arguments) if marker else None
    with trio.move_on_after(timeout_seconds):
        for item in sent:
            await item.finished.wait()
        if result is not None:
            await call.finish_tool_call(result, wait_seconds=math.inf)
    return BlastResult(count, sent, result)


def _check(call: SimCall, marker: FunctionCall | None, socket_id: int | None) -> None:
    call.check_open()
    if not call.targets(socket_id):
        which = "no open socket" if socket_id is None else f"no open socket {socket_id}"
        raise NoOpenSocket(f"The call '{call.call_id}' has {which}.")
    active = call.active_response
    if marker is not None and active is not None:
        raise ActiveResponse(active.id)
