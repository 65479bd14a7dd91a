"""The one place `SIDEBAND_TRANSPORT` picks the client behind the seam."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from .._config import SidebandTransport
from ._base import (
    DEFAULT_PING_INTERVAL_SECONDS,
    DEFAULT_PING_TIMEOUT_SECONDS,
    DEFAULT_SEND_TIMEOUT_SECONDS,
    SidebandSocket,
    SocketOptions,
)


def open_sideband_socket(
    url: str,
    *,
    token: str,
    max_message_size: int,
    connect_timeout: float,
    send_timeout: float = DEFAULT_SEND_TIMEOUT_SECONDS,
    ping_interval: float = DEFAULT_PING_INTERVAL_SECONDS,
    ping_timeout: float = DEFAULT_PING_TIMEOUT_SECONDS,
    transport: SidebandTransport = "websockets",
) -> AbstractAsyncContextManager[SidebandSocket]:
    """Open the sideband to *url* authenticated with `Bearer <token>`; close it on exit.

    A send that does not finish within *send_timeout* closes the socket; so does a ping, sent
    after *ping_interval* seconds without a byte from upstream, left unanswered for
    *ping_timeout* (a half-open connection: the path to upstream silently gone).

    Leaving the block, even by cancellation, sends a normal close frame (bounded in time).
    Whatever goes wrong comes out as one plain `SidebandSocketError`, never wrapped in an
    exception group.

    Raises:
        SidebandRejected: the upstream refused the handshake (401, 404 call_id_not_found, ...).
        SidebandUnreachable: no connection within *connect_timeout*, or a network error.
        SidebandClosed: from the block, when the open socket closed.
    """
    options = SocketOptions(
        max_message_size=max_message_size,
        connect_timeout=connect_timeout,
        send_timeout=send_timeout,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
    )
    # Imported here: only the chosen client (and its library) loads.
    if transport == "trio-websocket":
        from ._trio_websocket import open_trio_websocket

        return open_trio_websocket(url, token=token, options=options)
    from ._websockets import open_websocket_client

    return open_websocket_client(url, token=token, options=options)
