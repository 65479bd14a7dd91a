"""Running the realtime-trio server: settings in, a Hypercorn server out, until told to stop.

Shutdown (the `docker stop` path): the first SIGINT or SIGTERM makes Hypercorn close its
listening sockets and give in-flight requests up to a grace period before cancelling them;
then every session ends, each sideband with a normal close frame, and the process exits 0.
A second signal exits at once (`_signals`).
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack

import trio

from ._config import Settings
from ._http import create_app
from ._hypercorn import ShutdownTrigger, serve_app
from ._plugins import PluginRegistry, load_plugins
from ._sessions import SessionManager
from ._store import MemorySessionStore
from ._upstream import OpenAIClient

logger = logging.getLogger("realtime_trio.serve")


async def serve(
    settings: Settings,
    *,
    upstream: OpenAIClient | None = None,
    plugins: PluginRegistry | None = None,
    shutdown_trigger: ShutdownTrigger | None = None,
    listen_fd: int | None = None,
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
                max_body_bytes=settings.max_request_body_bytes,
                listen_fd=listen_fd,
                task_status=task_status,
            )
            ending = len(sessions)
            await sessions.end_all()
            nursery.cancel_scope.cancel()
    logger.info("shut down: %d sessions ended", ending)
