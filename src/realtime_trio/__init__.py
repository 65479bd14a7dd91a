"""realtime-trio: a keyless backend for mobile voice apps on the OpenAI Realtime API."""

from ._version import __version__ as __version__
from .app import create_app as create_app
from .config import Settings as Settings
from .config import load_settings as load_settings
from .upstream import OpenAIClient as OpenAIClient

__all__ = ["OpenAIClient", "Settings", "__version__", "create_app", "load_settings"]
