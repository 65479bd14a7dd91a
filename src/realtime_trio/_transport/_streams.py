"""What both clients need around the WebSocket itself: the stream under it, a bounded close,
and errors worded without the token."""

from __future__ import annotations

import json
import ssl
from urllib.parse import urlsplit

import trio

from .._errors import redact
from ._base import CLOSE_TIMEOUT_SECONDS, SidebandUnreachable


async def open_stream(url: str) -> trio.SocketStream | trio.SSLStream[trio.SocketStream]:
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


def rejection_message(body: bytes | bytearray | None, token: str) -> str:
    """Upstream's own error message from a refused handshake's body, when it has one."""
    try:
        message = json.loads(body or b"")["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = (body or b"").decode("utf-8", "replace")[:200] or "no reason given"
    return redact(str(message), token)
