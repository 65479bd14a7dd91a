"""What request handlers are handed: settings, the upstream client and the sessions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from quart import current_app

from .._config import Settings
from .._plugins import PluginRegistry
from .._sessions import SessionManager
from .._upstream import OpenAIClient

EXTENSION_KEY = "realtime_trio"


@dataclass(frozen=True)
class Services:
    settings: Settings
    upstream: OpenAIClient
    sessions: SessionManager

    @property
    def plugins(self) -> PluginRegistry:
        return self.sessions.plugins


def current_services() -> Services:
    """The services of the app handling the current request."""
    return cast(Services, current_app.extensions[EXTENSION_KEY])
