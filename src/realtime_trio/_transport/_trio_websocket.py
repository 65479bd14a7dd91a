"""The sideband's previous transport, trio-websocket (pure-Python wsproto), kept selectable.

`SIDEBAND_TRANSPORT=trio-websocket` chooses it. It is slower (a reader task and a protocol
object per frame) but independent of the fast client, which makes it the reference to compare
with when the fast client is in doubt.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any, final
from urllib.parse import urlsplit

import orjson
import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    HandshakeError,
    WebSocketConnection,
    wrap_client_stream,
)

from ._base import (
    ABNORMAL_CLOSURE,
    CLOSE_TIMEOUT_SECONDS,
    NORMAL_CLOSURE,
    SidebandClosed,
    SidebandRejected,
    SidebandSocketError,
    SocketOptions,
)
from ._streams import close_stream, open_stream, rejection_message, unreachable


@final
class TrioWebSocket:
    """An open sideband WebSocket on trio-websocket: one JSON event per text frame, both ways.

    Liveness as the default client has it: a quiet socket is pinged, an unanswered ping or a
    send past its deadline ends the connection (its stream is closed under it).
    """

    def __init__(
        self, connection: WebSocketConnection, stream: trio.abc.Stream, options: SocketOptions
    ) -> None:
        self._ws = connection
        self._stream = stream
        self._options = options
        self._aborted: SidebandClosed | None = None

    async def send(self, *events: dict[str, Any]) -> None:
        """Send client events in order. Raises `SidebandClosed` if the socket is gone."""
        try:
            with trio.move_on_after(self._options.send_timeout):
                for event in events:
                    await self._ws.send_message(orjson.dumps(event).decode())
                return
        except ConnectionClosed as exc:
            raise self._aborted or _closed(exc) from None
        raise await self._abort(f"a send did not finish within {self._options.send_timeout:g}s")

    async def receive_many(self) -> list[bytes]:
        """The next message (text as UTF-8). Raises `SidebandClosed` once the socket closes."""
        options = self._options
        try:
            while True:
                with trio.move_on_after(options.ping_interval):
                    message = await self._ws.get_message()
                    return [message.encode() if isinstance(message, str) else message]
                with trio.move_on_after(options.ping_timeout):
                    await self._ws.ping()  # returns once its pong is back
                    continue
                raise await self._abort(f"no answer to a ping within {options.ping_timeout:g}s")
        except ConnectionClosed as exc:
            raise self._aborted or _closed(exc) from None

    async def _abort(self, reason: str) -> SidebandClosed:
        """Close the stream under the connection (no close handshake: it cannot be trusted)."""
        self._aborted = self._aborted or SidebandClosed(ABNORMAL_CLOSURE, reason)
        await trio.aclose_forcefully(self._stream)
        return self._aborted

    async def aclose(self, code: int = NORMAL_CLOSURE) -> None:
        """Close with a close frame, even from a cancelled scope, within a bounded time."""
        with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT_SECONDS):
            await self._ws.aclose(code=code)


@asynccontextmanager
async def open_trio_websocket(
    url: str, *, token: str, options: SocketOptions
) -> AsyncIterator[TrioWebSocket]:
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
            deadline = trio.current_time() + options.connect_timeout  # TCP, TLS and upgrade
            with trio.fail_at(deadline):
                stream = await open_stream(url)
            try:
                with trio.fail_at(deadline):
                    connection = await wrap_client_stream(
                        nursery,
                        stream,
                        _host_header(url),
                        _resource(url),
                        extra_headers=[(b"authorization", f"Bearer {token}".encode())],
                        max_message_size=options.max_message_size,
                    )
                socket = TrioWebSocket(connection, stream, options)
                try:
                    yield socket
                finally:
                    await socket.aclose()
            finally:
                await close_stream(stream)  # ours to close, whatever happened (a refusal too)
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        raise _single_error(group, token) from None
    except (trio.TooSlowError, ConnectionRejected, HandshakeError, OSError) as exc:
        raise _translated(exc, token) from None


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
        return unreachable(exc, token)
    if isinstance(exc, ConnectionRejected):
        return SidebandRejected(exc.status_code, rejection_message(exc.body, token))
    if isinstance(exc, HandshakeError | OSError):
        return unreachable(exc.__cause__ or exc, token)
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
    reason = exc.reason
    if reason is None:
        return SidebandClosed(ABNORMAL_CLOSURE, "connection lost")
    return SidebandClosed(reason.code, reason.reason)
