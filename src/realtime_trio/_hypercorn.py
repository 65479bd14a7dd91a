"""Running an ASGI app on Hypercorn's trio worker, until a trigger says stop.

Shared by the server and the simulator: the bind, the backlog, the graceful deadline, and
`Connection: close` on answers sent while stopping.
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


def hypercorn_config(
    host: str, port: int, *, grace_seconds: float = DEFAULT_GRACE_SECONDS
) -> Config:
    config = Config()
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
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve *app* until *shutdown_trigger* returns (or forever), then for *grace_seconds* more
    at most, while the requests in flight finish.

    `task_status.started()` receives the bound URLs.
    """
    if shutdown_trigger is not None:
        app = _CloseWhenStopping(app)
        shutdown_trigger = partial(_then_set, shutdown_trigger, app.stopping)
    await hypercorn_serve(
        app,
        hypercorn_config(host, port, grace_seconds=grace_seconds),
        shutdown_trigger=shutdown_trigger,
        task_status=task_status,
    )


async def _then_set(trigger: ShutdownTrigger, event: trio.Event) -> None:
    await trigger()
    event.set()


class _CloseWhenStopping:
    """ASGI middleware: once `stopping` is set, HTTP/1 answers say `Connection: close`.

    Hypercorn (0.18, trio worker) means to close a connection whose response ends during the
    shutdown, but Quart-Trio cancels the task doing it as the request ends, so the connection
    stays open and Hypercorn waits out the whole grace for the client to drop it. Told to
    close, the client does so as soon as it has read the answer.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.stopping = trio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("http_version") not in ("1.0", "1.1"):
            await self.app(scope, receive, send)
            return

        async def send_closing(message: Any) -> None:
            if message["type"] == "http.response.start" and self.stopping.is_set():
                headers = [*message.get("headers", ()), (b"connection", b"close")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_closing)
