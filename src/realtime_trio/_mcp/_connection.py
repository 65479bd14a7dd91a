"""One long-lived client of one MCP server, for the server's whole life.

Never a connection per call (the latency bug peers have): `run` connects, lists the tools,
serves calls until the connection is lost, then connects again with backoff, for as long as
the nursery that owns it runs. Loss is noticed at once: a stdio server's output ends (it
exited), a transport fails, a call finds the connection closed, or a ping goes unanswered.
When it is lost, calls in flight are answered `unavailable` at once; they do not wait for their
timeout. Its tools stay offered meanwhile, so live calls keep the same tool list.

A call cut off by its timeout is cancelled on the wire (the SDK sends `notifications/cancelled`
for a cancelled request) and the connection stays usable.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Literal, TextIO

import anyio
import httpx2
import mcp_types
import trio
from mcp.client.session import ClientSession, IncomingMessage
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from .._version import __version__
from ._config import McpServerConfig
from ._results import output_of

logger = logging.getLogger("realtime_trio.mcp")

State = Literal["connecting", "connected", "reconnecting"]
ToolsListed = Callable[["McpConnection", list[mcp_types.Tool]], None]

CONNECT_TIMEOUT_SECONDS = 30.0
RECONNECT_FIRST_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 30.0
PING_EVERY_SECONDS = 15.0
PING_TIMEOUT_SECONDS = 10.0
MAX_TOOL_PAGES = 100  # a server whose tools/list never ends cannot hold the connection up
CLIENT_INFO = mcp_types.Implementation(name="realtime-trio", version=__version__)


class McpConnection:
    """The client of the MCP server *config* describes.

    Args:
        config: its entry of `MCP_SERVERS_FILE`.
        tools_listed: told the server's tools each time they are listed (on connecting, and
            after `notifications/tools/list_changed`).
    """

    def __init__(self, config: McpServerConfig, *, tools_listed: ToolsListed) -> None:
        self.config = config
        self._tools_listed = tools_listed
        self.state: State = "connecting"
        self.last_error: str | None = None
        self.attempted = trio.Event()  # the first attempt is over, connected or not
        self._session: ClientSession | None = None
        self._lost = trio.Event()
        self._relist = trio.Event()
        self._calls: set[trio.CancelScope] = set()

    @property
    def name(self) -> str:
        return self.config.name

    async def run(self) -> None:
        """Keep connected, until cancelled."""
        backoff = RECONNECT_FIRST_SECONDS
        while True:
            try:
                async with self._connected() as (session, ended):
                    await self._list_tools(session)
                    self._session, self.state, self.last_error = session, "connected", None
                    backoff = RECONNECT_FIRST_SECONDS
                    self.attempted.set()
                    logger.info("MCP server %s: connected", self.name)
                    await self._serve(session, ended)
                    self.last_error = "the connection was lost"
            except Exception as exc:  # whatever a transport or a server does wrong
                self.last_error = _reason(exc)
            finally:
                self._session = None
                for scope in self._calls:
                    scope.cancel()  # they answer `unavailable` now
            self.state = "reconnecting"
            self.attempted.set()
            logger.warning(
                "MCP server %s: %s; trying again in %gs", self.name, self.last_error, backoff
            )
            await trio.sleep(backoff)
            backoff = min(backoff * 2, RECONNECT_MAX_SECONDS)

    async def call(self, tool: str, arguments: dict[str, Any]) -> Any:
        """*tool*'s result as a function call's output; `unavailable` when the server is not
        connected or is lost during the call. Cancellation (the call's timeout) passes
        through, after the SDK has told the server."""
        session = self._session
        if session is None:
            return self._unavailable()
        with trio.CancelScope() as scope:
            self._calls.add(scope)
            try:
                result = await session.call_tool(tool, arguments)
            except MCPError as exc:
                if exc.code != mcp_types.CONNECTION_CLOSED:
                    return {"ok": False, "reason": "tool_error", "message": exc.message}
                self._lost.set()
                return self._unavailable()
            except RuntimeError as exc:  # a result the SDK refused (its output schema, ...)
                return {"ok": False, "reason": "tool_error", "message": str(exc)}
            finally:
                self._calls.discard(scope)
        if scope.cancelled_caught:
            return self._unavailable()
        return output_of(result)

    def describe(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "transport": self.config.transport,
            "lastError": self.last_error,
        }

    def _unavailable(self) -> dict[str, Any]:
        return {
            "ok": False,
            "reason": "unavailable",
            "message": f"The MCP server {self.name!r} is not reachable right now; try again soon.",
        }

    @asynccontextmanager
    async def _connected(
        self,
    ) -> AsyncIterator[tuple[ClientSession, trio.Event]]:
        """An initialised session, and an event set when the server's stream ends."""
        config = self.config
        async with AsyncExitStack() as stack:
            if config.url is None:
                parameters = StdioServerParameters(
                    command=config.command or "", args=config.args, env=config.env, cwd=config.cwd
                )
                streams = stdio_client(parameters, errlog=_errlog())
            else:
                http = await stack.enter_async_context(
                    httpx2.AsyncClient(
                        headers=config.headers, timeout=httpx2.Timeout(30.0, read=300.0)
                    )
                )
                streams = streamable_http_client(config.url, http_client=http)
            # Entering these connects nothing yet (a process is started, at most): the
            # handshake is what may hang, so it alone is timed (a timeout around the entering
            # would outlive the task groups they open).
            read, write = await stack.enter_async_context(streams)
            ended = trio.Event()
            watched = await stack.enter_async_context(_watched(read, ended))
            session = await stack.enter_async_context(
                ClientSession(
                    watched, write, message_handler=self._on_message, client_info=CLIENT_INFO
                )
            )
            with trio.fail_after(CONNECT_TIMEOUT_SECONDS):
                await session.initialize()
            yield session, ended

    async def _serve(self, session: ClientSession, ended: trio.Event) -> None:
        """Answer tool list changes and ping, until the connection is lost."""
        self._lost = trio.Event()
        async with trio.open_nursery() as nursery:

            async def until(event: trio.Event) -> None:
                await event.wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(until, ended)
            nursery.start_soon(until, self._lost)
            nursery.start_soon(self._relist_when_changed, session)
            nursery.start_soon(self._ping, session)

    async def _relist_when_changed(self, session: ClientSession) -> None:
        while True:
            await self._relist.wait()
            self._relist = trio.Event()
            logger.info("MCP server %s: its tools changed", self.name)
            try:
                await self._list_tools(session)
            except Exception as exc:
                self.last_error = _reason(exc)
                self._lost.set()

    async def _ping(self, session: ClientSession) -> None:
        while True:
            await trio.sleep(PING_EVERY_SECONDS)
            try:
                with trio.fail_after(PING_TIMEOUT_SECONDS):
                    await session.send_ping()
            except (MCPError, trio.TooSlowError) as exc:
                self.last_error = f"no answer to a ping ({_reason(exc)})"
                self._lost.set()

    async def _list_tools(self, session: ClientSession) -> None:
        tools: list[mcp_types.Tool] = []
        params: mcp_types.PaginatedRequestParams | None = None
        for _ in range(MAX_TOOL_PAGES):
            page = await session.list_tools(params=params)
            tools.extend(page.tools)
            if page.next_cursor is None:
                break
            params = mcp_types.PaginatedRequestParams(cursor=page.next_cursor)
        self._tools_listed(self, [tool for tool in tools if self.config.offers(tool.name)])

    async def _on_message(self, message: IncomingMessage) -> None:
        if isinstance(message, mcp_types.ToolListChangedNotification):
            self._relist.set()
        elif isinstance(message, Exception):
            logger.debug("MCP server %s: transport error: %r", self.name, message)


@asynccontextmanager
async def _watched(
    read: Any, ended: trio.Event
) -> AsyncIterator[anyio.streams.memory.MemoryObjectReceiveStream[Any]]:
    """*read* passed on as it is, with *ended* set when it ends: how an exited stdio server
    (its output closed) is noticed at once, not at the next call."""
    send, receive = anyio.create_memory_object_stream[Any](0)

    async def forward() -> None:
        try:
            async with send:
                async for item in read:
                    await send.send(item)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
        finally:
            ended.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(forward)
        try:
            yield receive
        finally:
            nursery.cancel_scope.cancel()


def _errlog() -> TextIO:
    """Where a stdio server's stderr goes: ours, as a real file (a test runner's stand-in for
    `sys.stderr` may have none)."""
    try:
        sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return sys.__stderr__ if sys.__stderr__ is not None else sys.stderr
    return sys.stderr


def _reason(exc: BaseException) -> str:
    """One line on why a connection failed: the innermost error of a group."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
