"""Running an ASGI app on Hypercorn's trio worker, until a trigger says stop.

Shared by the server and the simulator: the bind, the backlog, the graceful deadline,
`Connection: close` on answers sent while stopping, and keep-alive connections that survive an
answer sent before the request's body arrived (`_ConnectionKeeper`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve

ShutdownTrigger = Callable[[], Awaitable[None]]

DEFAULT_GRACE_SECONDS = 3.0  # Hypercorn's own default, kept for the simulator
LISTEN_BACKLOG = 2048
DEFAULT_MAX_BODY_BYTES = 1 << 20
# How long an answer waits for the rest of its request's body before it closes the connection.
BODY_WAIT_SECONDS = 2.0


def hypercorn_config(
    host: str,
    port: int,
    *,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
    listen_fd: int | None = None,
) -> Config:
    """Hypercorn's config for *host*:*port*, or for the socket *listen_fd* already bound (one
    that `serve --workers` shares between its workers) when it is given."""
    config = Config()
    if listen_fd is not None:
        config.bind = [f"fd://{listen_fd}"]
    else:
        config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    # Once the trigger returns, Hypercorn stops accepting, lets the connections it holds finish
    # their requests (idle keep-alive ones close at once), and cancels whatever is left after
    # this long; its trio worker puts the deadline on the nursery of its connections.
    config.graceful_timeout = grace_seconds
    # Connections the kernel queues before they are accepted: Hypercorn's 100 makes a burst of
    # a few hundred app launches get resets (the kernel caps it at net.core.somaxconn).
    config.backlog = LISTEN_BACKLOG
    config.accesslog = None  # our AccessLogMiddleware writes the access log
    config.errorlog = logging.getLogger("hypercorn.error")
    return config


async def serve_app(
    app: Any,
    *,
    host: str,
    port: int,
    shutdown_trigger: ShutdownTrigger | None = None,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    listen_fd: int | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve *app* until *shutdown_trigger* returns (or forever), then for *grace_seconds* more
    at most, while the requests in flight finish.

    With *listen_fd*, *app* is served on that listening socket, inherited, instead of one bound
    to *host*:*port*.

    An answer waits for the rest of its request's body (up to *max_body_bytes*, the largest
    body the app accepts) before it goes out, or says `Connection: close`.
    `task_status.started()` receives the bound URLs.
    """
    app = _ConnectionKeeper(app, max_body_bytes=max_body_bytes)
    if shutdown_trigger is not None:
        shutdown_trigger = partial(_then_set, shutdown_trigger, app.stopping)
    await hypercorn_serve(
        app,
        hypercorn_config(host, port, grace_seconds=grace_seconds, listen_fd=listen_fd),
        shutdown_trigger=shutdown_trigger,
        task_status=task_status,
    )


async def _then_set(trigger: ShutdownTrigger, event: trio.Event) -> None:
    await trigger()
    event.set()


class _ConnectionKeeper:
    """ASGI middleware for HTTP/1 connections Hypercorn (0.18, trio worker) would mishandle.

    Hypercorn closes or recycles a keep-alive connection from the application's task, as the
    response ends, and Quart-Trio cancels that task as the request ends; so what Hypercorn
    means to do there does not happen. Two answers met that:

    - An answer sent before the request's body arrived (a 401 from the key check, a 429, a 404
      or 405 for a request with a body, while a phone's body is still on its way): Hypercorn
      can recycle a connection only once the body is in, and its attempt to close it instead
      is cancelled, so the rest of the body is parsed and dropped, the next request sits in
      the parser unanswered, and the client waits out its timeout. Such an answer now waits
      (at most `BODY_WAIT_SECONDS`) for the body, which Quart-Trio reads in the background
      whether or not a handler asks for it; a body larger than the app accepts (the 413 case),
      or one that does not come in time, is not waited for: the answer says
      `Connection: close`, and the client opens a new connection for its next request.
    - An answer sent while the server stops: Hypercorn's close is cancelled likewise and it
      waits out the whole grace for the client to drop the connection. Once `stopping` is set,
      answers say `Connection: close`, and the client closes as soon as it has read one.
    """

    def __init__(self, app: Any, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.stopping = trio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("http_version") not in ("1.0", "1.1"):
            await self.app(scope, receive, send)
            return
        expected = _body_length(scope["headers"])
        stopping = self.stopping
        if expected == 0:  # no body: nothing can be left unread

            async def send_closing_if_stopping(message: Any) -> None:
                if message["type"] == "http.response.start" and stopping.is_set():
                    message = _closing(message)
                await send(message)

            await self.app(scope, receive, send_closing_if_stopping)
            return
        arrived = trio.Event()

        async def receive_noting_the_end() -> Any:
            message = await receive()
            if message["type"] == "http.disconnect" or not message.get("more_body"):
                arrived.set()
            return message

        async def send_once_arrived(message: Any) -> None:
            if message["type"] == "http.response.start":
                if (
                    not arrived.is_set()
                    and expected is not None
                    and expected <= self.max_body_bytes
                ):
                    with trio.move_on_after(BODY_WAIT_SECONDS):
                        await arrived.wait()
                if not arrived.is_set() or stopping.is_set():
                    message = _closing(message)
            await send(message)

        await self.app(scope, receive_noting_the_end, send_once_arrived)


def _closing(start: Any) -> Any:
    """An `http.response.start` message that says `Connection: close`."""
    return {**start, "headers": [*start.get("headers", ()), (b"connection", b"close")]}


def _body_length(headers: Any) -> int | None:
    """The request body's declared length: 0 for none, None when it is not declared (chunked)."""
    length = 0
    for name, value in headers:
        if name.lower() == b"transfer-encoding":
            return None
        if name.lower() == b"content-length":
            try:
                length = int(value)
            except ValueError:
                return None
    return length
