"""The seam itself: what the sideband may do with a socket, and how a socket fails.

    SidebandSocketError
     +-- SidebandRejected     the handshake was refused (status and upstream's message)
     +-- SidebandUnreachable  no connection: refused, reset, DNS, TLS, or too slow
     +-- SidebandClosed       an open socket closed (its close code and reason)

Every client raises these and nothing else; nothing here knows any client.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

NORMAL_CLOSURE = 1000
GOING_AWAY = 1001  # how upstream closes a session that hit its maximum duration
ABNORMAL_CLOSURE = 1006  # never sent: how a connection that ended without a close frame is told
CLOSE_TIMEOUT_SECONDS = 2.0
# Liveness: a socket quiet this long is pinged; no answer within the timeout is a drop. A send
# that cannot finish within its deadline (the peer stopped reading) is a drop too.
DEFAULT_PING_INTERVAL_SECONDS = 20.0
DEFAULT_PING_TIMEOUT_SECONDS = 10.0
DEFAULT_SEND_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class SocketOptions:
    """How a client opens and keeps a socket: the largest message, and the deadlines."""

    max_message_size: int
    connect_timeout: float
    send_timeout: float = DEFAULT_SEND_TIMEOUT_SECONDS
    ping_interval: float = DEFAULT_PING_INTERVAL_SECONDS
    ping_timeout: float = DEFAULT_PING_TIMEOUT_SECONDS


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
        can). Raises `SidebandClosed` if the socket is gone, or did not take them within the
        send deadline (the socket is then closed: a peer that stops reading is gone too)."""
        ...

    async def receive_many(self) -> Sequence[bytes]:
        """Every message that one read brought, at least one, in order; text as UTF-8 bytes
        (unchecked: JSON parsing checks it). Raises `SidebandClosed` once the socket is closed,
        and closes it (1006) when a ping on a quiet socket got no answer in time."""
        ...

    async def aclose(self, code: int = NORMAL_CLOSURE) -> None:
        """Close with a close frame, even from a cancelled scope, within a bounded time."""
        ...
