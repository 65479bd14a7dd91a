"""The sideband's transport: connect, send, receive, close. The one place that knows trio-websocket.

Keeping it behind this seam lets the transport be measured and swapped in one module. Errors
come out as three exceptions the sideband acts on:

    SidebandSocketError
     +-- SidebandRejected     the handshake was refused (status and upstream's message)
     +-- SidebandUnreachable  no connection: refused, reset, DNS, TLS, or too slow
     +-- SidebandClosed       an open socket closed (its close code and reason)
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    HandshakeError,
    WebSocketConnection,
    wrap_client_stream,
)

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


class SidebandSocket:
    """An open sideband WebSocket: one JSON event per text frame, both ways."""

    def __init__(self, connection: WebSocketConnection) -> None:
        self._ws = connection

    async def send(self, event: dict[str, Any]) -> None:
        """Send one client event. Raises `SidebandClosed` if the socket is gone."""
        try:
            await self._ws.send_message(json.dumps(event))
        except ConnectionClosed as exc:
            raise _closed(exc) from None

    async def receive(self) -> str | bytes:
        """The next frame, as received. Raises `SidebandClosed` once the socket closes."""
        try:
            return await self._ws.get_message()
        except ConnectionClosed as exc:
            raise _closed(exc) from None

    async def aclose(self, code: int = NORMAL_CLOSURE) -> None:
        """Close with a close frame, even from a cancelled scope, within a bounded time."""
        with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT_SECONDS):
            await self._ws.aclose(code=code)


@asynccontextmanager
async def open_sideband_socket(
    url: str,
    *,
    token: str,
    max_message_size: int,
    connect_timeout: float,
) -> AsyncIterator[SidebandSocket]:
    """Open the sideband to *url* authenticated with `Bearer <token>`; close it on exit.

    Leaving the block, even by cancellation, sends a normal close frame (bounded in time).
    The connection's reader task lives in a nursery of its own here, and whatever goes wrong
    comes out as one plain `SidebandSocketError`, never wrapped in an exception group.

    Raises:
        SidebandRejected: the upstream refused the handshake (401, 404 call_id_not_found, ...).
        SidebandUnreachable: no connection within *connect_timeout*, or a network error.
        SidebandClosed: from the block, when the open socket closed.
    """
    try:
        async with trio.open_nursery() as nursery:
            deadline = trio.current_time() + connect_timeout  # one deadline for TCP, TLS, upgrade
            with trio.fail_at(deadline):
                stream = await _open_stream(url)
            try:
                with trio.fail_at(deadline):
                    connection = await wrap_client_stream(
                        nursery,
                        stream,
                        _host_header(url),
                        _resource(url),
                        extra_headers=[(b"authorization", f"Bearer {token}".encode())],
                        max_message_size=max_message_size,
                    )
                socket = SidebandSocket(connection)
                try:
                    yield socket
                finally:
                    await socket.aclose()
            finally:
                # Ours to close, whatever happened (a refused handshake leaves it open). Shielded:
                # an unshielded await here, in a cancelled scope, would replace the error in
                # flight with a Cancelled that the nursery then swallows.
                with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT_SECONDS):
                    await stream.aclose()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        raise _single_error(group, token) from None
    except (trio.TooSlowError, ConnectionRejected, HandshakeError, OSError) as exc:
        raise _translated(exc, token) from None


async def _open_stream(url: str) -> trio.abc.Stream:
    parts = urlsplit(url)
    host, secure = parts.hostname or "", parts.scheme == "wss"
    port = parts.port or (443 if secure else 80)
    if secure:
        return await trio.open_ssl_over_tcp_stream(
            host, port, ssl_context=ssl.create_default_context(), https_compatible=True
        )
    return await trio.open_tcp_stream(host, port)


def _host_header(url: str) -> str:
    parts = urlsplit(url)
    default = 443 if parts.scheme == "wss" else 80
    host = parts.hostname or ""
    return host if parts.port in (None, default) else f"{host}:{parts.port}"


def _resource(url: str) -> str:
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _translated(exc: BaseException, token: str) -> BaseException:
    if isinstance(exc, SidebandSocketError):
        return exc
    if isinstance(exc, trio.TooSlowError):
        return SidebandUnreachable("no connection within the connect timeout")
    if isinstance(exc, ConnectionRejected):
        return SidebandRejected(exc.status_code, _rejection_message(exc, token))
    if isinstance(exc, HandshakeError | OSError):
        cause = exc.__cause__ or exc
        return SidebandUnreachable(redact(f"{type(cause).__name__}: {cause}", token))
    return exc


def _single_error(group: BaseExceptionGroup, token: str) -> BaseException:
    """The one error a group from the connection's nursery stands for; the group otherwise.

    Cancellation wins: a group holding a `trio.Cancelled` is re-raised as it is.
    """
    leaves = list(_leaves(group))
    if any(isinstance(leaf, trio.Cancelled) for leaf in leaves):
        return group
    known = [_translated(leaf, token) for leaf in leaves]
    errors = [e for e in known if isinstance(e, SidebandSocketError)]
    if errors and len(errors) == len(known):
        return errors[0]
    return group


def _leaves(group: BaseExceptionGroup) -> Iterator[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


def _closed(exc: ConnectionClosed) -> SidebandClosed:
    return SidebandClosed(exc.reason.code, exc.reason.reason)


def _rejection_message(exc: ConnectionRejected, token: str) -> str:
    """Upstream's own error message from the rejection body, when it has one."""
    try:
        body = json.loads(exc.body or b"")
        message = body["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = (exc.body or b"").decode("utf-8", "replace")[:200] or "no reason given"
    return redact(str(message), token)
