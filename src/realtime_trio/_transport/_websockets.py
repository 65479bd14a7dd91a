"""The sideband's fast WebSocket client: `websockets`' sans-I/O protocol on a Trio stream.

The protocol object (`websockets.client.ClientProtocol`) does what must be exactly right and is
rare: the opening handshake, masking what we send, pings, the close handshake, and failing the
connection on a bad or over-size frame. What is frequent, whole text frames from the server,
bypasses it: `_frames.FrameSplitter` slices them out of large reads, and only the other frames
reach the protocol, in order. There is no reader task: pings are answered while someone
receives, which the sideband does for as long as it is connected; a quiet socket is pinged
from there too, and a ping left unanswered ends it (the path to upstream silently gone).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, final

import orjson
import trio
from websockets.client import ClientProtocol
from websockets.exceptions import InvalidHandshake, InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.protocol import OPEN
from websockets.uri import parse_uri

from ._base import (
    ABNORMAL_CLOSURE,
    CLOSE_TIMEOUT_SECONDS,
    NORMAL_CLOSURE,
    SidebandClosed,
    SidebandRejected,
    SidebandUnreachable,
    SocketOptions,
)
from ._frames import FrameSplitter
from ._streams import close_stream, open_stream, rejection_message, unreachable

RECEIVE_BYTES = 256 * 1024  # one read carries hundreds of events
MAX_RESPONSE_HEAD = 64 * 1024

CloseReason = tuple[int, str | None]


@final
class WebSocketClient:
    """An open sideband WebSocket: JSON events out as text frames, payloads in as bytes.

    Concurrency: any number of tasks may `send` (frames go out in the order they take the send
    lock); one task at a time may `receive_many`; `aclose` is for when nobody receives any more.
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        protocol: ClientProtocol,
        *,
        options: SocketOptions,
        buffered: bytes = b"",
    ) -> None:
        self._stream = stream
        self._protocol = protocol
        self._options = options
        self._splitter = FrameSplitter(options.max_message_size)
        if buffered:
            self._splitter.feed(buffered)
        # Every write to the stream holds it: Trio refuses concurrent `send_all`s.
        self._send_lock = trio.Lock()
        self._outgoing: list[bytes] = []  # the protocol's output not written yet
        self._fragments: list[bytes] = []  # a fragmented message being assembled
        self._closed: CloseReason | None = None
        self._eof = False  # the server closed the TCP connection
        self._broken = False  # the stream failed: nothing more can be written

    async def send(self, *events: dict[str, Any]) -> None:
        """Send client events as text frames, in order, in one write. Raises `SidebandClosed`
        once closed."""
        payloads = [orjson.dumps(event) for event in events]
        async with self._send_lock:
            if self._closed is not None or self._protocol.state is not OPEN:
                raise SidebandClosed(*(self._closed or self._reason()))
            for data in payloads:
                self._protocol.send_text(data)
            self._outgoing.extend(self._protocol.data_to_send())
            if not await self._write_outgoing():
                raise SidebandClosed(*(self._closed or self._reason()))

    async def receive_many(self) -> list[bytes]:
        """Every complete message that one read brought (at least one), in order.

        Text payloads are returned as UTF-8 bytes, unchecked. Pings are answered and a close
        frame is replied to on the way. Raises `SidebandClosed` once the socket is closed,
        after every message that arrived before the close was returned.
        """
        messages: list[bytes] = []
        waited = False
        while True:
            self._split(messages)
            if self._outgoing and not self._broken:
                async with self._send_lock:
                    await self._write_outgoing()
                waited = True
            if messages:
                if not waited:
                    await trio.lowlevel.checkpoint()
                return messages
            if self._closed is not None:
                raise SidebandClosed(*self._closed)
            await self._read()
            waited = True

    async def aclose(self, code: int = NORMAL_CLOSURE) -> None:
        """Close with a close frame and wait (bounded) for the server's, even when cancelled.

        Data still arriving is discarded. The TCP stream is closed in the end, whatever happens.
        """
        with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT_SECONDS):
            try:
                await self._close_handshake(code)
            finally:
                await self._stream.aclose()

    # -- receiving ------------------------------------------------------------------------------

    def _split(self, messages: list[bytes]) -> None:
        splitter = self._splitter
        while self._closed is None and (frame := splitter.split(messages)) is not None:
            self._to_protocol(frame, messages)

    def _to_protocol(self, data: bytes, messages: list[bytes]) -> None:
        """Let the protocol act on frames the splitter handed over; collect whole messages."""
        protocol = self._protocol
        protocol.receive_data(data)
        for frame in protocol.events_received():
            if not isinstance(frame, Frame):
                continue  # only a handshake's request or response is anything else
            opcode = frame.opcode
            if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
                if frame.fin:
                    messages.append(bytes(frame.data))
                else:
                    self._fragments = [bytes(frame.data)]
            elif opcode is Opcode.CONT:
                self._fragments.append(bytes(frame.data))
                if frame.fin:
                    messages.append(b"".join(self._fragments))
                    self._fragments = []
        self._outgoing.extend(protocol.data_to_send())
        if protocol.state is not OPEN:
            self._closed = self._reason()

    async def _read(self) -> None:
        """The next bytes from the stream, pinging upstream if it stays quiet (any byte back
        is a sign of life, the pong or not); a ping left unanswered ends the connection."""
        options = self._options
        try:
            with trio.move_on_after(options.ping_interval):
                data = await self._stream.receive_some(RECEIVE_BYTES)
                self._take(data)
                return
            await self._ping()
            with trio.move_on_after(options.ping_timeout):
                data = await self._stream.receive_some(RECEIVE_BYTES)
                self._take(data)
                return
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._take(b"")
            return
        await self._abort(f"no answer to a ping within {options.ping_timeout:g}s")

    async def _ping(self) -> None:
        async with self._send_lock:
            if self._protocol.state is OPEN:
                self._protocol.send_ping(b"realtime-trio")
                self._outgoing.extend(self._protocol.data_to_send())
            await self._write_outgoing()

    def _take(self, data: bytes | bytearray) -> None:
        if data:
            # A bytearray from some streams: bytes from here on, so payloads can be kept.
            self._splitter.feed(data if type(data) is bytes else bytes(data))
            return
        self._eof = True
        if self._closed is None:
            self._protocol.receive_eof()
            self._outgoing.clear()  # nothing to say to a closed connection
            self._closed = self._reason()

    def _reason(self) -> CloseReason:
        """The close code and reason to report: the server's, else ours, else 1006."""
        protocol = self._protocol
        close = protocol.close_rcvd or protocol.close_sent
        if close is None:
            return ABNORMAL_CLOSURE, "connection lost without a close frame"
        return close.code, close.reason or None

    # -- writing and closing --------------------------------------------------------------------

    async def _write_outgoing(self) -> bool:
        """Write what the protocol produced, within the send deadline; hold the send lock.

        False if the stream failed, or the write did not finish in time (the peer stopped
        reading: the connection is then closed, so whoever receives learns it at once).
        """
        data, self._outgoing = b"".join(self._outgoing), []
        if not data or self._broken:
            return not self._broken
        try:
            with trio.move_on_after(self._options.send_timeout):
                await self._stream.send_all(data)
                return True
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._broken = True
            if self._closed is None:
                self._closed = (ABNORMAL_CLOSURE, "connection lost")
            return False
        await self._abort(f"a send did not finish within {self._options.send_timeout:g}s")
        return False

    async def _abort(self, reason: str) -> None:
        """End the connection without a close handshake (it cannot be trusted any more): the
        stream is closed, and the next receive or send reports *reason* as a 1006."""
        self._broken = True
        if self._closed is None:
            self._closed = (ABNORMAL_CLOSURE, reason)
        await trio.aclose_forcefully(self._stream)

    async def _close_handshake(self, code: int) -> None:
        protocol = self._protocol
        if self._broken:
            return
        async with self._send_lock:
            if protocol.state is OPEN:
                protocol.send_close(code)
                self._outgoing.extend(protocol.data_to_send())
            await self._write_outgoing()
        if self._eof or self._broken or protocol.close_rcvd is not None:
            return
        rest = self._splitter.take_rest()  # from a frame boundary: the protocol can parse on
        if rest:
            protocol.receive_data(rest)
        while protocol.close_rcvd is None:
            try:
                data = await self._stream.receive_some(RECEIVE_BYTES)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            if not data:
                return
            protocol.receive_data(data)
            protocol.events_received()
            protocol.data_to_send()


@asynccontextmanager
async def open_websocket_client(
    url: str, *, token: str, options: SocketOptions
) -> AsyncIterator[WebSocketClient]:
    """Open the sideband to *url* authenticated with `Bearer <token>`; close it on exit.

    Leaving the block, even by cancellation, sends a normal close frame (bounded in time).

    Raises:
        SidebandRejected: the upstream refused the handshake (401, 404 call_id_not_found, ...).
        SidebandUnreachable: no connection within *connect_timeout*, or a network error.
    """
    deadline = trio.current_time() + options.connect_timeout  # one deadline: TCP, TLS, upgrade
    try:
        with trio.fail_at(deadline):
            stream = await open_stream(url)
    except (trio.TooSlowError, OSError) as exc:
        raise _unreachable(exc, token) from None
    try:
        try:
            with trio.fail_at(deadline):
                client = await _handshake(stream, url, token=token, options=options)
        except (trio.TooSlowError, OSError, trio.BrokenResourceError) as exc:
            raise _unreachable(exc, token) from None
        try:
            yield client
        finally:
            await client.aclose()
    finally:
        await close_stream(stream)  # ours to close, whatever happened (a refusal leaves it open)


async def _handshake(
    stream: trio.abc.Stream, url: str, *, token: str, options: SocketOptions
) -> WebSocketClient:
    """The opening handshake; the client it opens, holding whatever followed the response."""
    protocol = ClientProtocol(parse_uri(url), max_size=options.max_message_size)
    protocol.debug = False  # its debug log prints the request's headers: the token among them
    request = protocol.connect()
    request.headers["Authorization"] = f"Bearer {token}"
    protocol.send_request(request)
    await stream.send_all(b"".join(protocol.data_to_send()))
    received = b""
    while (end := received.find(b"\r\n\r\n")) < 0:
        if len(received) > MAX_RESPONSE_HEAD:
            raise SidebandUnreachable("the handshake response is too long")
        data = await stream.receive_some(RECEIVE_BYTES)
        if not data:
            raise SidebandUnreachable("the connection closed during the handshake")
        received += data
    # Only the response's head goes to the protocol, so that the frames after a 101 start on a
    # frame boundary for the splitter. A refusal's body is fed on until the response is whole.
    rest = received[end + 4 :]
    protocol.receive_data(received[: end + 4])
    while protocol.state is not OPEN and protocol.handshake_exc is None:
        if rest:
            protocol.receive_data(rest)
            rest = b""
        elif data := await stream.receive_some(RECEIVE_BYTES):
            protocol.receive_data(data)
        else:
            protocol.receive_eof()
    if protocol.handshake_exc is not None:
        raise _refused(protocol.handshake_exc, token)
    protocol.events_received()  # the response
    return WebSocketClient(stream, protocol, options=options, buffered=rest)


def _refused(exc: Exception, token: str) -> Exception:
    if isinstance(exc, InvalidStatus):
        response = exc.response
        return SidebandRejected(response.status_code, rejection_message(response.body, token))
    return _unreachable(exc, token)


def _unreachable(exc: BaseException, token: str) -> SidebandUnreachable:
    cause = exc.__cause__ if isinstance(exc, InvalidHandshake | trio.BrokenResourceError) else exc
    return unreachable(cause or exc, token)
