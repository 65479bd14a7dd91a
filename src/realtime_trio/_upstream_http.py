"""A lean keep-alive HTTP/1.1 client for the upstream's REST API: h11 on Trio's streams.

Minting a client secret is one small POST on every call start, so its client sits on the
hottest path the server has. A general-purpose client (httpx) spent about 2 ms of CPU per
request here, much of it checking every pooled socket on every request; this one does what the
upstream needs and no more: a bounded pool of keep-alive connections (TCP, or TLS verified
against the system's and certifi's roots), one request at a time on each, the one connection
taken from the pool checked for a close by the server before it is reused, and a request that
meets a connection the server had closed meanwhile sent again once on a new one (no byte of an
answer had come, so the server never answered it).

Deadlines are the caller's (`OpenAIClient` puts one over each attempt); the connect deadline,
which says that nothing was sent, is kept here. Errors:

    UpstreamHTTPError
     +-- UpstreamConnectError   no connection (refused, DNS, TLS, or not within the deadline):
     |                          nothing was sent, so the request may safely be sent again
     +-- UpstreamConnectionLost the connection broke, or the answer was not HTTP
     +-- UpstreamTimedOut       the transport's own read deadline passed (httpx's)

`HttpxTransport` does the same over an `httpx.AsyncClient`: for a proxy (`HTTPS_PROXY`), and
for a client handed in (tests' `MockTransport`).
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, final
from urllib.parse import urlsplit

import h11
import httpx
import orjson
import trio

RECEIVE_BYTES = 64 * 1024
MAX_ANSWER_BYTES = 16 * 1024 * 1024  # larger upstream answers are refused, not buffered
IDLE_EXPIRY_SECONDS = 30.0  # a pooled connection idle longer than this is not reused


class UpstreamHTTPError(Exception):
    """The request got no HTTP answer."""


class UpstreamConnectError(UpstreamHTTPError):
    """No connection could be made: nothing was sent."""


class UpstreamTimedOut(UpstreamHTTPError):
    """The transport's own read deadline passed."""


class UpstreamConnectionLost(UpstreamHTTPError):
    """The connection broke before the whole answer came, or the answer was not HTTP.

    `answered` says whether any byte of an answer had come (if not, the server never
    answered: on a connection it had closed while idle, the request can be sent again).
    """

    def __init__(self, reason: str, *, answered: bool) -> None:
        super().__init__(reason)
        self.answered = answered


@final
class Headers(Mapping[str, str]):
    """An answer's headers, looked up by name in any case (repeated ones joined by commas)."""

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        values: dict[str, str] = {}
        for name, value in raw:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            values[key] = f"{values[key]}, {text}" if key in values else text
        self._values = values

    def __getitem__(self, name: str) -> str:
        return self._values[name.lower()]

    def __iter__(self) -> Any:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def get(self, name: str, default: Any = None) -> Any:
        return self._values.get(name.lower(), default)


@dataclass(frozen=True)
class Answer:
    """An upstream answer, whole."""

    status_code: int
    headers: Headers
    content: bytes
    reason_phrase: str = ""

    @property
    def is_error(self) -> bool:
        return self.status_code >= 400

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body parsed as JSON (raises ValueError when it is not)."""
        return orjson.loads(self.content)


def default_ssl_context() -> ssl.SSLContext:
    """Verification against the system's roots (and `SSL_CERT_FILE`/`SSL_CERT_DIR`, which
    OpenSSL reads) and certifi's, when it is installed (httpx used those)."""
    context = ssl.create_default_context()
    try:
        import certifi
    except ImportError:  # pragma: no cover - certifi comes with httpx
        return context
    context.load_verify_locations(certifi.where())
    return context


class _Connection:
    """One keep-alive connection: h11's state on a Trio stream."""

    def __init__(self, stream: trio.abc.Stream, socket: trio.socket.SocketType) -> None:
        self.stream = stream
        self.socket = socket
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_ANSWER_BYTES)
        self.idle_since = trio.current_time()

    def usable(self) -> bool:
        """Whether it can carry another request: not expired, and not closed (or written to)
        by the server while it was idle."""
        if trio.current_time() - self.idle_since > IDLE_EXPIRY_SECONDS:
            return False
        return not self.socket.is_readable()

    async def exchange(self, request: h11.Request, body: bytes) -> tuple[h11.Response, bytes]:
        """Send *request* with *body*; the answer's head and body.

        Raises:
            UpstreamConnectionLost: with `.answered` False when no byte of an answer came.
        """
        conn = self.h11
        data = conn.send(request) or b""
        if body:
            data += conn.send(h11.Data(data=body)) or b""
        data += conn.send(h11.EndOfMessage()) or b""
        answered = False
        try:
            await self.stream.send_all(data)
            head: h11.Response | None = None
            parts: list[bytes] = []
            size = 0
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    chunk = await self.stream.receive_some(RECEIVE_BYTES)
                    answered = answered or bool(chunk)
                    conn.receive_data(chunk if type(chunk) is bytes else bytes(chunk))
                    continue
                if isinstance(event, h11.Response):
                    head = event
                elif isinstance(event, h11.Data):
                    size += len(event.data)
                    if size > MAX_ANSWER_BYTES:
                        raise _lost("the answer is larger than the client accepts", answered)
                    parts.append(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    if head is None:  # pragma: no cover - h11 sends the head first
                        raise _lost("no answer head", answered)
                    return head, b"".join(parts)
                elif isinstance(event, h11.ConnectionClosed):
                    raise _lost("the server closed the connection", answered)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise _lost(f"the connection broke ({type(exc).__name__})", answered) from None
        except h11.ProtocolError as exc:
            raise _lost(f"no HTTP/1.1 answer ({exc})", answered) from None

    def reusable(self) -> bool:
        """After an exchange: whether both sides keep the connection open for the next one."""
        conn = self.h11
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
            self.idle_since = trio.current_time()
            return True
        return False


def _lost(reason: str, answered: bool) -> UpstreamConnectionLost:
    return UpstreamConnectionLost(reason, answered=answered)


@final
class UpstreamHTTP:
    """Keep-alive connections to one origin, at most *max_connections* at once.

    Args:
        base_url: `http(s)://host[:port][/path]`; requests name paths under it.
        connect_timeout: deadline for a connection (and its TLS handshake), or for a free
            place in the pool.
        max_connections: connections open at once; requests beyond them wait for one.
        ssl_context: for `https`; the system's and certifi's roots by default.
        headers: sent with every request (the user agent, say).

    Resource handling: `aclose` closes every pooled connection.
    """

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float,
        max_connections: int,
        ssl_context: ssl.SSLContext | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        self._secure = parts.scheme == "https"
        self._host = parts.hostname or ""
        default_port = 443 if self._secure else 80
        self._port = parts.port or default_port
        self._prefix = parts.path.rstrip("/")
        authority = self._host if self._port == default_port else f"{self._host}:{self._port}"
        self._fixed_headers = [
            (b"host", authority.encode()),
            *((name.encode(), value.encode()) for name, value in (headers or {}).items()),
        ]
        self._connect_timeout = connect_timeout
        self._ssl_context = (ssl_context or default_ssl_context()) if self._secure else None
        self._places = trio.Semaphore(max_connections)
        self._idle: list[_Connection] = []

    async def post(self, path: str, *, body: bytes | None, headers: Mapping[str, str]) -> Answer:
        """POST *body* (a JSON text, or none) to *path* under the base URL; the whole answer.

        Raises:
            UpstreamConnectError: no connection (nothing sent).
            UpstreamConnectionLost: the connection broke after the request went out.
        """
        target = (self._prefix + path).encode()
        request_headers = [
            *self._fixed_headers,
            *((name.encode(), value.encode()) for name, value in headers.items()),
            (b"content-length", str(len(body or b"")).encode()),
        ]
        if body:
            request_headers.append((b"content-type", b"application/json"))
        request = h11.Request(method=b"POST", target=target, headers=request_headers)
        try:
            self._places.acquire_nowait()  # the usual case: a place is free
        except trio.WouldBlock:
            with trio.move_on_after(self._connect_timeout) as waiting:
                await self._places.acquire()
            if waiting.cancelled_caught:
                raise UpstreamConnectError(
                    f"no free connection within {self._connect_timeout:g} seconds"
                ) from None
        try:
            return await self._send(request, body or b"")
        finally:
            self._places.release()

    async def _send(self, request: h11.Request, body: bytes) -> Answer:
        connection = self._pooled()
        reused = connection is not None
        if connection is None:
            connection = await self._connect()
        try:
            head, content = await connection.exchange(request, body)
        except UpstreamConnectionLost as exc:
            await trio.aclose_forcefully(connection.stream)
            if not reused or exc.answered:
                raise
            # The server closed it while it was idle: the request was never answered.
            connection = await self._connect()
            try:
                head, content = await connection.exchange(request, body)
            except UpstreamConnectionLost:
                await trio.aclose_forcefully(connection.stream)
                raise
        except BaseException:
            await trio.aclose_forcefully(connection.stream)
            raise
        if connection.reusable():
            self._idle.append(connection)
        else:
            await trio.aclose_forcefully(connection.stream)
        return Answer(
            head.status_code,
            Headers(list(head.headers)),
            content,
            head.reason.decode("latin-1", "replace"),
        )

    def _pooled(self) -> _Connection | None:
        """The most recently used idle connection that is still usable (closing the others)."""
        while self._idle:
            connection = self._idle.pop()
            if connection.usable():
                return connection
            connection.socket.close()  # not worth a goodbye (nor an await)
        return None

    async def _connect(self) -> _Connection:
        try:
            with trio.fail_after(self._connect_timeout):
                tcp = await trio.open_tcp_stream(self._host, self._port)
                if self._ssl_context is None:
                    return _Connection(tcp, tcp.socket)
                tls = trio.SSLStream(
                    tcp, self._ssl_context, server_hostname=self._host, https_compatible=True
                )
                try:
                    await tls.do_handshake()
                except BaseException:
                    await trio.aclose_forcefully(tcp)
                    raise
                return _Connection(tls, tcp.socket)
        except trio.TooSlowError:
            raise UpstreamConnectError(
                f"no connection within {self._connect_timeout:g} seconds"
            ) from None
        except (OSError, trio.BrokenResourceError, ssl.SSLError) as exc:
            cause = exc.__cause__ or exc  # a failed TLS handshake says why in its cause
            raise UpstreamConnectError(f"{type(cause).__name__}: {cause}") from None

    async def aclose(self) -> None:
        """Close every pooled connection; later requests still work (on new connections)."""
        idle, self._idle = self._idle, []
        for connection in idle:
            await trio.aclose_forcefully(connection.stream)


class Transport(Protocol):
    """What `OpenAIClient` sends its requests through."""

    async def post(self, path: str, *, body: bytes | None, headers: Mapping[str, str]) -> Answer:
        """POST *body* to *path* under the base URL; the whole answer."""
        ...

    async def aclose(self) -> None:
        """Close the connections it keeps."""
        ...


@final
class HttpxTransport:
    """`Transport` over an `httpx.AsyncClient` (a proxy, or a client handed in).

    Args:
        base_url: the upstream's base URL (the client's own base URL is not used).
        client: the httpx client; closed by `aclose` only if *owned*.
    """

    def __init__(self, base_url: str, client: httpx.AsyncClient, *, owned: bool) -> None:
        self._base_url = base_url.rstrip("/")
        self._client = client
        self._owned = owned

    async def post(self, path: str, *, body: bytes | None, headers: Mapping[str, str]) -> Answer:
        request_headers = dict(headers)
        if body:
            request_headers["Content-Type"] = "application/json"
        try:
            response = await self._client.post(
                self._base_url + path, content=body, headers=request_headers
            )
        except (httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ConnectError) as exc:
            raise UpstreamConnectError(f"{type(exc).__name__}: {exc}") from None
        except httpx.TimeoutException as exc:
            raise UpstreamTimedOut(type(exc).__name__) from None
        except httpx.TransportError as exc:
            raise UpstreamConnectionLost(str(exc) or type(exc).__name__, answered=False) from None
        return Answer(
            response.status_code,
            Headers(list(response.headers.raw)),
            response.content,
            response.reason_phrase,
        )

    async def aclose(self) -> None:
        if self._owned:
            await self._client.aclose()
