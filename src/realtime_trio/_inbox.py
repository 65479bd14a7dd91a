"""Messages to one replica: how a request that arrived elsewhere reaches the replica holding a
session's sideband (push the new instructions, let the session go, end it).

A replica's inbox is a list in the store that it polls with a non-blocking pop (glide
multiplexes one connection per node: a blocking pop would stall every other command) a few
dozen times a second. A message left in the inbox of a replica that died expires with it
(`INBOX_KEEP_SECONDS`), and each message carries its own deadline, past which the receiver
drops it rather than act on a request its sender has given up on.

`Inbox` is the interface; `MemoryInbox` serves one process (and the contract tests).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

INBOX_KEEP_SECONDS = 30
RECEIVE_BATCH = 100


class Inbox(Protocol):
    async def send(self, replica: str, message: dict[str, Any], ttl_seconds: float) -> None:
        """Queue *message* (JSON-ready) for *replica*; it is dropped unread after
        *ttl_seconds*."""
        ...

    async def receive(self, replica: str) -> list[dict[str, Any]]:
        """The messages waiting for *replica*, oldest first, without waiting (maybe none)."""
        ...


class MemoryInbox:
    """`Inbox` in this process's memory, on an injectable wall clock."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._queues: dict[str, deque[dict[str, Any]]] = {}

    async def send(self, replica: str, message: dict[str, Any], ttl_seconds: float) -> None:
        queue = self._queues.setdefault(replica, deque())
        queue.append({**message, "deadline": self._clock() + ttl_seconds})

    async def receive(self, replica: str) -> list[dict[str, Any]]:
        queue = self._queues.get(replica)
        if not queue:
            return []
        taken = [queue.popleft() for _ in range(min(RECEIVE_BATCH, len(queue)))]
        return fresh(taken, self._clock())


def fresh(messages: list[dict[str, Any]], now: float) -> list[dict[str, Any]]:
    """*messages* whose deadline has not passed, without it."""
    kept = []
    for message in messages:
        deadline = message.pop("deadline", None)
        if isinstance(deadline, int | float) and deadline >= now:
            kept.append(message)
    return kept
