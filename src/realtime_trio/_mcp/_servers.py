"""The MCP servers of `MCP_SERVERS_FILE`: a client each, and their tools in the registry.

Start-up waits a little for each server's first attempt, so the first calls already have the
tools of the servers that answer; a server that does not answer does not hold start-up, and its
tools are offered once it connects (live calls then get a `session.update`). A tool whose name
on calls clashes with another tool's stops start-up naming both; one that appears later (a
server that connected late, a changed list) is left out with an error in the log instead, since
a running server cannot refuse to start.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

import mcp_types
import trio

from .._plugin_api import Tool, ToolContext
from .._plugins import PluginRegistry, RegisteredTool
from ._config import McpConfigError, McpServerConfig, call_name
from ._connection import McpConnection

logger = logging.getLogger("realtime_trio.mcp")

STARTUP_WAIT_SECONDS = 10.0


class McpServers:
    """The clients of the configured MCP servers, run by `run` in a nursery of the server."""

    def __init__(
        self, configs: list[McpServerConfig], plugins: PluginRegistry, *, file: str
    ) -> None:
        self._plugins = plugins
        self._file = file
        self._connections = [McpConnection(c, tools_listed=self._offer) for c in configs]
        self._starting = True
        self._clashes: list[str] = []

    async def run(
        self, *, task_status: trio.TaskStatus[McpServers] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Connect to every server and keep connected until cancelled; started once each has
        had its first attempt (or `STARTUP_WAIT_SECONDS` passed).

        Raises:
            McpConfigError: tools of servers that answered at start-up clash by name.
        """
        async with trio.open_nursery() as nursery:
            for connection in self._connections:
                nursery.start_soon(connection.run)
            with trio.move_on_after(STARTUP_WAIT_SECONDS):
                for connection in self._connections:
                    await connection.attempted.wait()
            self._starting = False
            if self._clashes:
                raise McpConfigError(f"MCP_SERVERS_FILE {self._file}: {self._clashes[0]}")
            task_status.started(self)

    def describe(self) -> dict[str, dict[str, Any]]:
        """Each server's state, for `GET /tools`."""
        return {
            c.name: {**c.describe(), "tools": self._plugins.source_tools(c.config.source)}
            for c in self._connections
        }

    def _offer(self, connection: McpConnection, listed: list[mcp_types.Tool]) -> None:
        config = connection.config
        tools: dict[str, RegisteredTool] = {}
        origin: dict[str, str] = {}  # name on calls -> the server's own name for the tool
        for mcp_tool in listed:
            name = call_name(config.name, mcp_tool.name)
            if name in origin:
                self._clash(
                    f"tools {origin[name]!r} and {mcp_tool.name!r} of MCP server {config.name!r} "
                    f"both become {name!r} on calls"
                )
                continue
            origin[name] = mcp_tool.name
            tool = _tool(connection, mcp_tool, name)
            if (problem := tool.parameters_problem()) is not None:
                logger.error(
                    "MCP server %s: tool %s has an inputSchema that is not a JSON Schema (%s); "
                    "not offered",
                    config.name,
                    mcp_tool.name,
                    problem,
                )
                continue
            tools[name] = RegisteredTool(tool, plugin=None, source=config.source)
        refused = self._plugins.set_source_tools(config.source, list(tools.values()))
        for name in refused:
            holder = self._plugins.get(name)
            owner = holder.source_name if holder is not None else "another tool"
            self._clash(
                f"tool {origin[name]!r} of MCP server {config.name!r} becomes {name!r} on calls, "
                f"the name of a tool of {owner}"
            )
        offered = self._plugins.source_tools(config.source)
        logger.info("MCP server %s: tools %s", config.name, ", ".join(offered) or "none")

    def _clash(self, message: str) -> None:
        if self._starting:
            self._clashes.append(message)
        else:
            logger.error("MCP_SERVERS_FILE %s: %s; left out", self._file, message)


def _tool(connection: McpConnection, mcp_tool: mcp_types.Tool, name: str) -> Tool:
    return Tool(
        name=name,
        description=mcp_tool.description or mcp_tool.title or mcp_tool.name,
        handler=partial(_call, connection, mcp_tool.name),
        parameters=mcp_tool.input_schema,
        timeout_seconds=connection.config.timeoutSeconds,
    )


async def _call(
    connection: McpConnection, tool: str, context: ToolContext, arguments: dict[str, Any]
) -> Any:
    return await connection.call(tool, arguments)
