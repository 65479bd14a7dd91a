"""Running an app on Hypercorn's trio worker, until a signal or a trigger says stop.

Shutdown (the `docker stop` path): the first SIGINT or SIGTERM makes Hypercorn close its
listening sockets and give in-flight requests up to a grace period before cancelling them;
then every session ends, each sideband with a normal close frame, and the process exits 0.
A second signal exits at once.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from functools import partial
from typing import Any, NoReturn

import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve

from .app import create_app
from .config import Settings
from .plugins import PluginRegistry, load_plugins
from .sessions import SessionManager
from .store import MemorySessionStore
from .upstream import OpenAIClient

logger = logging.getLogger(__name__)

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


async def serve(
    settings: Settings,
    *,
    upstream: OpenAIClient | None = None,
    plugins: PluginRegistry | None = None,
    shutdown_trigger: ShutdownTrigger | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the realtime-trio server on `settings.host`/`settings.port`.

    `task_status.started()` receives the bound URLs, once the server accepts connections.
    Without an *upstream*, one is opened from *settings* and closed when serving ends; without
    *plugins*, they are loaded from *settings* (raising `PluginError`). Once *shutdown_trigger*
    returns, requests in flight get `settings.shutdown_grace_seconds` to finish; then every
    session ends and every sideband closes with a normal close frame.
    """
    if plugins is None:
        plugins = load_plugins(settings)
    async with AsyncExitStack() as stack:
        if upstream is None:
            upstream = await stack.enter_async_context(OpenAIClient(settings))
        async with trio.open_nursery() as nursery:
            sessions = SessionManager(
                settings, upstream=upstream, store=MemorySessionStore(), plugins=plugins
            )
            await nursery.start(sessions.run)
            await serve_app(
                create_app(settings, upstream=upstream, sessions=sessions),
                host=settings.host,
                port=settings.port,
                shutdown_trigger=shutdown_trigger,
                grace_seconds=settings.shutdown_grace_seconds,
                task_status=task_status,
            )
            ending = len(sessions)
            await sessions.end_all()
            nursery.cancel_scope.cancel()
    logger.info("shut down: %d sessions ended", ending)


async def run_until_signalled(
    run: Callable[..., Awaitable[object]], *, grace_seconds: float = DEFAULT_GRACE_SECONDS
) -> None:
    """Await `run(shutdown_trigger=...)`, the trigger returning on the first SIGINT or SIGTERM.

    The signals are watched from before *run* starts until it returns, so a second one during
    the shutdown exits the process at once (`watch_stop_signals`). *grace_seconds* is only
    logged: it is *run*'s to honour.
    """
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(watch_stop_signals, stop, grace_seconds=grace_seconds))
        await run(shutdown_trigger=stop.wait)
        nursery.cancel_scope.cancel()


async def watch_stop_signals(
    stop: trio.Event,
    *,
    grace_seconds: float,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Set *stop* on the first SIGINT or SIGTERM (the Ctrl-C and `docker stop` paths); on a
    second one, exit the process at once (`_exit_now`).

    Runs until cancelled; while it runs, neither signal raises `KeyboardInterrupt`.
    """
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        async for signum in signals:
            if stop.is_set():
                _exit_now(signum)
            logger.info(
                "received %s, shutting down (grace %g s)",
                signal.Signals(signum).name,
                grace_seconds,
            )
            stop.set()


def _exit_now(signum: int) -> NoReturn:
    """End the process with status 128 + *signum*, the status a shell reports for a process
    the signal killed, without unwinding anything.

    Cancellation cannot do this: it waits for shielded work (a close frame being sent, a
    session's store cleanup, Hypercorn's shielded writes to a slow client), and the operator
    who signals twice has asked not to wait. The kernel closes the sockets; log records still
    queued would be lost, so the handlers are flushed first.
    """
    logger.warning("second signal: exiting now")
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(128 + signum)
