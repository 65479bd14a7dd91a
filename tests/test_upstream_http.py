"""The lean upstream client over real sockets: keep-alive, closes, slow bodies, deadlines, TLS,
and the proxy fallback.

Most tests talk to a scripted HTTP/1.1 server (h11 on a Trio stream) that counts connections
and answers as each test says; the simulator checks the rest end to end.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import h11
import pytest
import trio
import trustme

from conftest import make_settings
from realtime_trio._errors import UpstreamTimeout, UpstreamUnreachable
from realtime_trio._upstream import OpenAIClient
from realtime_trio._upstream_http import (
    HttpxTransport,
    UpstreamConnectError,
    UpstreamHTTP,
)
from realtime_trio.simulator import DEFAULT_API_KEY, RunningSimulator

SECRET = {"value": "ek_test_0123456789", "expires_at": 1_900_000_000}
Answer = Callable[["Peer", h11.Request, bytes], Awaitable[None]]


class Peer:
    """One connection of the scripted server."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.SERVER)

    async def next_request(self) -> tuple[h11.Request, bytes] | None:
        request: h11.Request | None = None
        body = b""
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                data = await self.stream.receive_some(65536)
                if not data:
                    return None
                self.h11.receive_data(data)
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert request is not None
                return request, body
            elif isinstance(event, h11.ConnectionClosed):
                return None

    async def answer(
        self,
        status: int,
        body: dict[str, Any],
        headers: list[tuple[str, str]] = (),  # type: ignore[assignment]
    ) -> None:
        data = json.dumps(body).encode()
        head = h11.Response(
            status_code=status,
            headers=[
                ("content-type", "application/json"),
                ("content-length", str(len(data))),
                *headers,
            ],
        )
        await self.stream.send_all(
            self.h11.send(head)
            + self.h11.send(h11.Data(data=data))
            + self.h11.send(h11.EndOfMessage())
        )
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()


class ScriptedServer:
    """A loopback HTTP/1.1 server answering with *answer*; counts connections and requests."""

    def __init__(self, answer: Answer, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self._answer = answer
        self._ssl_context = ssl_context
        self.connections = 0
        self.requests: list[tuple[h11.Request, bytes]] = []
        self.url = ""

    async def run(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        if self._ssl_context is not None:
            listeners = [
                trio.SSLListener(listener, self._ssl_context, https_compatible=True)
                for listener in listeners
            ]
        scheme = "https" if self._ssl_context is not None else "http"
        self.url = f"{scheme}://localhost:{port}/v1"
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(trio.serve_listeners, self._serve, listeners))
            task_status.started(self.url)

    async def _serve(self, stream: trio.abc.Stream) -> None:
        self.connections += 1
        peer = Peer(stream)
        async with stream:
            try:
                while (received := await peer.next_request()) is not None:
                    self.requests.append(received)
                    await self._answer(peer, *received)
            except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
                pass


async def secret_answer(peer: Peer, request: h11.Request, body: bytes) -> None:
    await peer.answer(200, SECRET)


@pytest.fixture
async def scripted(nursery: trio.Nursery) -> Callable[..., Awaitable[ScriptedServer]]:
    async def start(answer: Answer = secret_answer, **kwargs: Any) -> ScriptedServer:
        server = ScriptedServer(answer, **kwargs)
        await nursery.start(server.run)
        return server

    return start


def lean(url: str, **kwargs: Any) -> UpstreamHTTP:
    options: dict[str, Any] = {"connect_timeout": 2.0, "max_connections": 4, **kwargs}
    return UpstreamHTTP(url, **options)


async def mint(client: UpstreamHTTP) -> Any:
    answer = await client.post(
        "/realtime/client_secrets", body=b'{"session": {}}', headers={"Authorization": "Bearer k"}
    )
    assert answer.status_code == 200
    return answer.json()


async def test_requests_reuse_one_keep_alive_connection(scripted: Any) -> None:
    server = await scripted()
    client = lean(server.url)

    answers = [await mint(client) for _ in range(3)]

    assert answers == [SECRET] * 3
    assert server.connections == 1
    (request, body), *_ = server.requests
    assert request.target == b"/v1/realtime/client_secrets"
    assert (b"authorization", b"Bearer k") in list(request.headers)
    assert json.loads(body) == {"session": {}}
    await client.aclose()


async def test_a_connection_the_server_closed_while_idle_is_replaced(scripted: Any) -> None:
    async def answer_then_close(peer: Peer, request: h11.Request, body: bytes) -> None:
        await peer.answer(200, SECRET)
        await peer.stream.aclose()  # no Connection: close: the client learns it when idle

    server = await scripted(answer_then_close)
    client = lean(server.url)

    assert await mint(client) == SECRET
    await trio.sleep(0.05)  # the close reaches the client's pooled socket
    assert await mint(client) == SECRET
    assert server.connections == 2
    await client.aclose()


async def test_a_connection_closed_as_the_request_goes_out_is_retried_once(scripted: Any) -> None:
    served = 0

    async def second_dies_unanswered(peer: Peer, request: h11.Request, body: bytes) -> None:
        nonlocal served
        served += 1
        if served == 2:  # the second request, on the reused connection: dropped unanswered
            await peer.stream.aclose()
            return
        await peer.answer(200, SECRET)

    server = await scripted(second_dies_unanswered)
    client = lean(server.url)

    assert await mint(client) == SECRET
    assert await mint(client) == SECRET  # sent again on a new connection, no byte answered

    assert server.connections == 2
    assert len(server.requests) == 3
    await client.aclose()


async def test_a_slow_body_is_read_whole(scripted: Any) -> None:
    async def trickled(peer: Peer, request: h11.Request, body: bytes) -> None:
        data = json.dumps(SECRET).encode()
        head = h11.Response(status_code=200, headers=[("content-length", str(len(data)))])
        await peer.stream.send_all(peer.h11.send(head))
        for byte in data:
            await trio.sleep(0.002)
            await peer.stream.send_all(peer.h11.send(h11.Data(data=bytes([byte]))))
        await peer.stream.send_all(peer.h11.send(h11.EndOfMessage()))
        peer.h11.start_next_cycle()

    server = await scripted(trickled)
    client = lean(server.url)

    assert await mint(client) == SECRET
    await client.aclose()


async def test_an_answer_that_never_ends_meets_the_attempt_deadline(scripted: Any) -> None:
    async def never_finishes(peer: Peer, request: h11.Request, body: bytes) -> None:
        head = h11.Response(status_code=200, headers=[("content-length", "100")])
        await peer.stream.send_all(peer.h11.send(head) + b'{"value": ')
        await trio.sleep_forever()

    server = await scripted(never_finishes)
    settings = make_settings(
        openai_api_key="sk-test-key-0123456789",
        openai_base_url=server.url.replace("localhost", "127.0.0.1"),
        upstream_timeout_seconds=0.3,
        upstream_retry_attempts=0,
    )
    async with OpenAIClient(settings) as upstream:
        with pytest.raises(UpstreamTimeout, match=r"within 0\.3 seconds"):
            await upstream.create_client_secret({"type": "realtime"})


async def test_a_full_pool_waits_at_most_the_connect_deadline(scripted: Any) -> None:
    release = trio.Event()

    async def held(peer: Peer, request: h11.Request, body: bytes) -> None:
        await release.wait()
        await peer.answer(200, SECRET)

    server = await scripted(held)
    client = lean(server.url, max_connections=1, connect_timeout=0.2)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(mint, client)
        await trio.sleep(0.05)  # the one connection is taken

        with pytest.raises(UpstreamConnectError, match="no free connection"):
            await mint(client)
        release.set()
    await client.aclose()


async def test_a_refused_connection_is_unreachable_and_says_nothing_was_sent() -> None:
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now
    settings = make_settings(
        openai_api_key="sk-test-key-0123456789",
        openai_base_url=f"http://127.0.0.1:{port}/v1",
        upstream_retry_attempts=0,
    )
    async with OpenAIClient(settings) as upstream:
        with pytest.raises(UpstreamUnreachable) as raised:
            await upstream.create_client_secret({"type": "realtime"})
    assert "sk-test-key" not in str(raised.value)


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


async def test_tls_is_verified_against_the_roots_given(
    scripted: Any, authority: trustme.CA
) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(server_context)
    server = await scripted(ssl_context=server_context)
    trusting = ssl.create_default_context()
    authority.configure_trust(trusting)

    client = lean(server.url, ssl_context=trusting)
    assert await mint(client) == SECRET
    await client.aclose()

    stranger = lean(server.url)  # the system's and certifi's roots: this CA is not among them
    with pytest.raises(UpstreamConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        await mint(stranger)


async def test_a_proxy_for_the_upstream_is_used_and_no_proxy_bypasses_it(
    scripted: Any, simulator: RunningSimulator
) -> None:
    async def proxy_answer(peer: Peer, request: h11.Request, body: bytes) -> None:
        await peer.answer(200, SECRET)  # a proxy that answers itself, for the test

    proxy = await scripted(proxy_answer)
    proxy_url = proxy.url.removesuffix("/v1").replace("localhost", "127.0.0.1")
    settings = make_settings(
        openai_api_key=DEFAULT_API_KEY, openai_base_url=simulator.base_url, http_proxy=proxy_url
    )
    async with OpenAIClient(settings) as upstream:
        assert isinstance(upstream._transport, HttpxTransport)
        secret = await upstream.create_client_secret({"type": "realtime"})
    assert secret.value == SECRET["value"]
    ((request, _),) = proxy.requests
    assert request.target == f"{simulator.base_url}/realtime/client_secrets".encode()

    direct = settings.model_copy(update={"no_proxy": "localhost, 127.0.0.1"})
    async with OpenAIClient(direct) as upstream:
        assert isinstance(upstream._transport, UpstreamHTTP)
        minted = await upstream.create_client_secret({"type": "realtime"})
    assert minted.value.startswith("ek_")
    assert len(proxy.requests) == 1


async def test_the_simulator_is_minted_from_over_one_connection(
    simulator: RunningSimulator,
) -> None:
    settings = make_settings(openai_api_key=DEFAULT_API_KEY, openai_base_url=simulator.base_url)
    async with OpenAIClient(settings) as upstream:
        secrets = [await upstream.create_client_secret({"type": "realtime"}) for _ in range(3)]
    assert len({secret.value for secret in secrets}) == 3
    assert all(secret.value.startswith("ek_") for secret in secrets)
