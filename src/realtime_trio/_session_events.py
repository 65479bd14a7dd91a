"""A session's live event stream: what happens in it, fanned out to whoever listens.

Each listener has a bounded buffer. Publishing never waits: a listener whose buffer is full is
dropped (its stream ends), so a slow reader can never slow the call. With no listener,
publishing costs one truth test, and the session builds nothing to publish.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import trio

logger = logging.getLogger("realtime_trio.events")

LISTENER_BUFFER = 256


class SessionEvents:
    """The listeners of one session's events."""

    def __init__(self, session_id: str, *, buffer: int = LISTENER_BUFFER) -> None:
        self._session_id = session_id
        self._buffer = buffer
        self._listeners: set[trio.MemorySendChannel[dict[str, Any]]] = set()

    def __bool__(self) -> bool:
        """Whether anyone listens (publishers check it before building an event)."""
        return bool(self._listeners)

    def publish(self, event: dict[str, Any]) -> None:
        """Give *event* to every listener now; drop the ones that cannot keep up."""
        for listener in list(self._listeners):
            try:
                listener.send_nowait(event)
            except trio.WouldBlock:
                logger.info(
                    "session %s: an event listener fell %d events behind; dropped it",
                    self._session_id,
                    self._buffer,
                )
                self._listeners.discard(listener)
                listener.close()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._listeners.discard(listener)

    @contextmanager
    def listen(self) -> Iterator[trio.MemoryReceiveChannel[dict[str, Any]]]:
        """A new listener's channel, for the block's duration; it ends when the session does
        (`close`) or when the listener is dropped for falling behind."""
        send, receive = trio.open_memory_channel[dict[str, Any]](self._buffer)
        self._listeners.add(send)
        try:
            yield receive
        finally:
            self._listeners.discard(send)
            send.close()
            receive.close()

    def close(self) -> None:
        """The session ended: every stream ends."""
        for listener in self._listeners:
            listener.close()
        self._listeners.clear()
