"""A session's events as Server-Sent Events: one JSON object per `data:` line.

On the replica that runs the session, its live events (`SessionEvents`) after a first
`snapshot`. On another replica (a shared store), a new `snapshot` each time the stored session
changes: coarser, but the same stream for a client, wherever its request landed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import trio

from .._errors import RealtimeTrioError
from .._live_session import LiveSession
from .._sessions import SessionManager

EVENT_STREAM_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # proxies that buffer (nginx) pass each event on at once
}
# A comment line this often keeps idle connections (and the proxies between) open.
KEEP_ALIVE_SECONDS = 15.0
# How often another replica looks at the stored session for changes.
POLL_SECONDS = 0.5


def _message(event: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(event) + b"\n\n"


async def event_stream(session: LiveSession, snapshot: dict[str, Any]) -> AsyncIterator[bytes]:
    """*snapshot*, then *session*'s events until it ends or this listener falls behind."""
    with session.events.listen() as events:
        yield _message({"type": "snapshot", "session": session.describe()})
        while True:
            with trio.move_on_after(KEEP_ALIVE_SECONDS) as idle:
                try:
                    event = await events.receive()
                except (trio.EndOfChannel, trio.ClosedResourceError):
                    return
            if idle.cancelled_caught:
                yield b": keep-alive\n\n"
            else:
                yield _message(event)


async def snapshot_stream(sessions: SessionManager, session_id: str) -> AsyncIterator[bytes]:
    """A `snapshot` of a session held elsewhere each time it changes, until it is gone."""
    last: dict[str, Any] | None = None
    quiet = 0.0
    while True:
        try:
            view = await sessions.describe(session_id)
        except RealtimeTrioError:
            return  # ended (or the store away: the client reconnects)
        if view != last:
            last, quiet = view, 0.0
            yield _message({"type": "snapshot", "session": view})
        elif quiet >= KEEP_ALIVE_SECONDS:
            quiet = 0.0
            yield b": keep-alive\n\n"
        await trio.sleep(POLL_SECONDS)
        quiet += POLL_SECONDS
