"""The sideband's transport: a WebSocket to a live call, behind one small seam.

The sideband sees only what this package exports: `open_sideband_socket` (which picks the client
`SIDEBAND_TRANSPORT` names), the `SidebandSocket` protocol (send, receive many, close) and the
errors below. Behind it:

    _base.py             the seam: the socket protocol and the error tree
    _connect.py          open_sideband_socket: the choice of client, made here only
    _websockets.py       the default client: websockets' sans-I/O protocol on a Trio stream
    _frames.py           its frame splitter: whole data frames sliced off the byte stream
    _trio_websocket.py   the previous client, trio-websocket (`SIDEBAND_TRANSPORT=trio-websocket`)
    _streams.py          TCP/TLS streams, a bounded close, errors worded without the token

    SidebandSocketError
     +-- SidebandRejected     the handshake was refused (status and upstream's message)
     +-- SidebandUnreachable  no connection: refused, reset, DNS, TLS, or too slow
     +-- SidebandClosed       an open socket closed (its close code and reason)

Imports point one way: the clients import `_base` and `_streams`, `_connect` imports the
clients, and nothing here imports the package itself.
"""

from ._base import GOING_AWAY as GOING_AWAY
from ._base import NORMAL_CLOSURE as NORMAL_CLOSURE
from ._base import SidebandClosed as SidebandClosed
from ._base import SidebandRejected as SidebandRejected
from ._base import SidebandSocket as SidebandSocket
from ._base import SidebandSocketError as SidebandSocketError
from ._base import SidebandUnreachable as SidebandUnreachable
from ._connect import open_sideband_socket as open_sideband_socket

__all__ = [
    "GOING_AWAY",
    "NORMAL_CLOSURE",
    "SidebandClosed",
    "SidebandRejected",
    "SidebandSocket",
    "SidebandSocketError",
    "SidebandUnreachable",
    "open_sideband_socket",
]
