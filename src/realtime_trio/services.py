"""What request handlers are handed: the settings and the upstream client, set by `create_app`."""

from __future__ import annotations

from dataclasses import dataclass

from quart import current_app

from .config import Settings
from .upstream import OpenAIClient

EXTENSION_KEY = "realtime_trio"


@dataclass(frozen=True)
class Services:
    settings: Settings
    upstream: OpenAIClient


def current_services() -> Services:
    """The services of the app handling the current request."""
    return current_app.extensions[EXTENSION_KEY]
