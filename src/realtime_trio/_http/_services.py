"""What request handlers are handed: settings, the upstream client, the sessions, and the
MCP servers when there are some."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from quart import current_app

from .._config import Settings
from .._plugins import PluginRegistry
from .._sessions import SessionManager
from .._upstream import OpenAIClient

if TYPE_CHECKING:
    from .._mcp._servers import McpServers

EXTENSION_KEY = "realtime_trio"


@dataclass(frozen=True)
class Services:
    settings: Settings
    upstream: OpenAIClient
    sessions: SessionManager
    mcp: McpServers | None = None

    @property
    def plugins(self) -> PluginRegistry:
        return self.sessions.plugins

    def mcp_servers(self) -> dict[str, dict[str, Any]]:
        """Each MCP server's state (none without `MCP_SERVERS_FILE`)."""
        return self.mcp.describe() if self.mcp is not None else {}


def current_services() -> Services:
    """The services of the app handling the current request."""
    return cast(Services, current_app.extensions[EXTENSION_KEY])
