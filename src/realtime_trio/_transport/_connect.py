"""The one place `SIDEBAND_TRANSPORT` picks the client behind the seam."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from .._config import SidebandTransport
from ._base import SidebandSocket


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
    # Imported here: only the chosen client (and its library) loads.
    if transport == "trio-websocket":
        from ._trio_websocket import open_trio_websocket

        return open_trio_websocket(
            url, token=token, max_message_size=max_message_size, connect_timeout=connect_timeout
        )
    from ._websockets import open_websocket_client

    return open_websocket_client(
        url, token=token, max_message_size=max_message_size, connect_timeout=connect_timeout
    )
