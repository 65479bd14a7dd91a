"""The sideband's transport seam: connect, send, receive, close, whichever client does it.

Two clients sit behind it: `ws_client` (websockets' sans-I/O protocol with our own frame
splitter, the default, fast enough for hundreds of thousands of events a second) and
`ws_trio_websocket` (the previous one, selectable with `SIDEBAND_TRANSPORT`). The sideband sees
only `SidebandSocket` and these errors:

    SidebandSocketError
     +-- SidebandRejected     the handshake was refused (status and upstream's message)
     +-- SidebandUnreachable  no connection: refused, reset, DNS, TLS, or too slow
     +-- SidebandClosed       an open socket closed (its close code and reason)
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol
from urllib.parse import urlsplit

import trio

from .config import SidebandTransport
from .errors import redact

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


def open_sideband_socket(
    url: str,
    *,
    token: str,
    max_message_size: int,
    connect_timeout: float,
    transport: SidebandTransport = "websockets",
) -> AbstractAsyncContextManager[SidebandSocket]:
    """Open the sideband to *url* authenticated with `Bearer <token>`; close it on exit.

    Leaving the block, even by cancellation, sends a normal close frame (bounded in time).
    Whatever goes wrong comes out as one plain `SidebandSocketError`, never wrapped in an
    exception group.

    Raises:
        SidebandRejected: the upstream refused the handshake (401, 404 call_id_not_found, ...).
        SidebandUnreachable: no connection within *connect_timeout*, or a network error.
        SidebandClosed: from the block, when the open socket closed.
    """
    # Imported here: each client imports this module's errors, and only the chosen one loads.
    if transport == "trio-websocket":
        from .ws_trio_websocket import open_trio_websocket

        return open_trio_websocket(
            url, token=token, max_message_size=max_message_size, connect_timeout=connect_timeout
        )
    from .ws_client import open_websocket_client

    return open_websocket_client(
        url, token=token, max_message_size=max_message_size, connect_timeout=connect_timeout
    )


async def open_stream(url: str) -> trio.abc.Stream:
    """A TCP (`ws://`) or TLS (`wss://`) stream to the host of *url*."""
    parts = urlsplit(url)
    host, secure = parts.hostname or "", parts.scheme == "wss"
    port = parts.port or (443 if secure else 80)
    if secure:
        return await trio.open_ssl_over_tcp_stream(
            host, port, ssl_context=ssl.create_default_context(), https_compatible=True
        )
    return await trio.open_tcp_stream(host, port)


async def close_stream(stream: trio.abc.AsyncResource) -> None:
    """Close *stream* whatever happened, even from a cancelled scope, within a bounded time.

    Shielded: an unshielded await in a cancelled scope's cleanup would replace the error in
    flight with a Cancelled (that a nursery may then swallow).
    """
    with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT_SECONDS):
        await stream.aclose()


def unreachable(cause: BaseException, token: str) -> SidebandUnreachable:
    """A failed connection attempt, said without the token: a timeout, or *cause*'s words."""
    if isinstance(cause, trio.TooSlowError):
        return SidebandUnreachable("no connection within the connect timeout")
    return SidebandUnreachable(redact(f"{type(cause).__name__}: {cause}", token))


def rejection_message(body: bytes | None, token: str) -> str:
    """Upstream's own error message from a refused handshake's body, when it has one."""
    try:
        message = json.loads(body or b"")["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = (body or b"").decode("utf-8", "replace")[:200] or "no reason given"
    return redact(str(message), token)
