"""The seam itself: what the sideband may do with a socket, and how a socket fails.

    SidebandSocketError
     +-- SidebandRejected     the handshake was refused (status and upstream's message)
     +-- SidebandUnreachable  no connection: refused, reset, DNS, TLS, or too slow
     +-- SidebandClosed       an open socket closed (its close code and reason)

Every client raises these and nothing else; nothing here knows any client.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

NORMAL_CLOSURE = 1000
CLOSE_TIMEOUT_SECONDS = 2.0


class SidebandSocketError(Exception):
    pass


class SidebandRejected(SidebandSocketError):
    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(f"handshake refused with {status_code}: {message}")
        self.status_code = status_code
        self.message = message


class SidebandUnreachable(SidebandSocketError):
    pass


class SidebandClosed(SidebandSocketError):
    def __init__(self, code: int, reason: str | None) -> None:
        super().__init__(f"closed with {code}" + (f": {reason}" if reason else ""))
        self.code = code
        self.reason = reason


class SidebandSocket(Protocol):
    """An open sideband WebSocket: one JSON event per text frame, both ways."""

    async def send(self, *events: dict[str, Any]) -> None:
        """Send client events, in order, one text frame each (in one write where the transport
        can). Raises `SidebandClosed` if the socket is gone."""
        ...

    async def receive_many(self) -> Sequence[bytes]:
        """Every message that one read brought, at least one, in order; text as UTF-8 bytes
        (unchecked: JSON parsing checks it). Raises `SidebandClosed` once the socket is closed."""
        ...

    async def aclose(self, code: int = NORMAL_CLOSURE) -> None:
        """Close with a close frame, even from a cancelled scope, within a bounded time."""
        ...
