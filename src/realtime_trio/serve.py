"""Running an app on Hypercorn's trio worker, until a signal or a trigger says stop."""

from __future__ import annotations

import logging
import signal
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

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


def hypercorn_config(host: str, port: int) -> Config:
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None  # our AccessLogMiddleware writes the access log
    config.errorlog = logging.getLogger("hypercorn.error")
    return config


async def serve_app(
    app: Any,
    *,
    host: str,
    port: int,
    shutdown_trigger: ShutdownTrigger | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve *app* until *shutdown_trigger* returns (or forever).

    `task_status.started()` receives the bound URLs.
    """
    await hypercorn_serve(
        app,
        hypercorn_config(host, port),
        shutdown_trigger=shutdown_trigger,
        task_status=task_status,
    )


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
    *plugins*, they are loaded from *settings* (raising `PluginError`). When serving ends,
    every session ends and every sideband closes with a normal close frame.
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
                task_status=task_status,
            )
            await sessions.end_all()
            nursery.cancel_scope.cancel()


async def wait_for_stop_signal() -> None:
    """Return on the first SIGINT or SIGTERM (the Ctrl-C and `docker stop` paths)."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            logger.info("received %s, shutting down", signal.Signals(signum).name)
            return
