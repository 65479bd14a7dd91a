"""Running the realtime-trio server: settings in, a Hypercorn server out, until told to stop.

Shutdown (the `docker stop` path): the first SIGINT or SIGTERM makes Hypercorn close its
listening sockets and give in-flight requests up to a grace period before cancelling them;
then every session ends, each sideband with a normal close frame, and the process exits 0.
A second signal exits at once (`_signals`).
"""

from __future__ import annotations

import importlib.util
import logging
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

import trio

from ._config import Settings
from ._http import create_app
from ._hypercorn import ShutdownTrigger, serve_app
from ._mcp._config import McpConfigError, McpServerConfig, load_mcp_servers
from ._metrics import Metrics
from ._plugins import PluginRegistry, load_plugins
from ._replica import RECORD_KEEP_SECONDS, RECORD_MARGIN_SECONDS, Replica
from ._sessions import SessionManager
from ._store import MemorySessionStore
from ._upstream import OpenAIClient

if TYPE_CHECKING:
    from ._mcp._servers import McpServers

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
    mcp_configs = mcp_server_configs(settings)
    async with AsyncExitStack() as stack:
        # METRICS_ENABLED=false: nothing is counted at all, not only left unserved.
        metrics = Metrics() if settings.metrics_enabled else None
        if upstream is None:
            upstream = await stack.enter_async_context(OpenAIClient(settings, metrics=metrics))
        name = settings.replica_name()
        replica = await _open_replica(settings, name, stack)
        async with trio.open_nursery() as nursery:
            mcp = await _start_mcp(nursery, mcp_configs, plugins, settings)
            sessions = SessionManager(
                settings,
                upstream=upstream,
                store=MemorySessionStore(),
                plugins=plugins,
                replica=replica,
                replica_name=name,
                metrics=metrics,
            )
            await nursery.start(sessions.run)
            await serve_app(
                create_app(settings, upstream=upstream, sessions=sessions, mcp=mcp),
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
    what = "handed over" if replica is not None else "ended"
    logger.info("shut down: %d sessions %s", ending, what)


def mcp_server_configs(settings: Settings) -> list[McpServerConfig]:
    """The servers of `MCP_SERVERS_FILE` (none without it).

    Raises:
        McpConfigError: the file cannot be used, or the MCP SDK is not installed.
    """
    path = settings.mcp_servers_file
    if path is None:
        return []
    configs = load_mcp_servers(path)
    if configs and importlib.util.find_spec("mcp") is None:
        raise McpConfigError(
            f"MCP_SERVERS_FILE {path} names MCP servers, but the MCP client is not installed: "
            "pip install 'realtime-trio[mcp]'"
        )
    return configs


async def _start_mcp(
    nursery: trio.Nursery,
    configs: list[McpServerConfig],
    plugins: PluginRegistry,
    settings: Settings,
) -> McpServers | None:
    """A client for each MCP server, run in *nursery*; started once each had a first try."""
    if not configs:
        return None
    from ._mcp._servers import McpServers

    servers = McpServers(configs, plugins, file=str(settings.mcp_servers_file))
    started: McpServers = await nursery.start(servers.run)
    return started


async def _open_replica(settings: Settings, name: str, stack: AsyncExitStack) -> Replica | None:
    """This replica's part in the shared store `STORE_URL` names; None for `memory://` (then
    nothing of the Valkey client is imported)."""
    url = settings.store()
    if not url.shared:
        return None
    from ._valkey._tables import open_store_tables

    tables = await stack.enter_async_context(
        open_store_tables(url, prefix=settings.store_key_prefix, name=name)
    )
    ttl = settings.session_idle_ttl_seconds
    logger.info("replica %s on the session store %s", name, url.redacted())
    return Replica(
        tables,
        name=name,
        lease_seconds=settings.sideband_lease_seconds,
        record_ttl_seconds=ttl + RECORD_MARGIN_SECONDS if ttl else RECORD_KEEP_SECONDS,
    )
