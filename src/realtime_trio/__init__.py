"""realtime-trio: a keyless backend for mobile voice apps on the OpenAI Realtime API."""

from ._version import __version__ as __version__
from .app import create_app as create_app
from .config import Settings as Settings
from .config import load_settings as load_settings
from .hookspecs import hookimpl as hookimpl
from .plugin_api import NoArguments as NoArguments
from .plugin_api import Tool as Tool
from .plugin_api import ToolContext as ToolContext
from .plugin_api import ToolResult as ToolResult
from .upstream import OpenAIClient as OpenAIClient

__all__ = [
    "NoArguments",
    "OpenAIClient",
    "Settings",
    "Tool",
    "ToolContext",
    "ToolResult",
    "__version__",
    "create_app",
    "hookimpl",
    "load_settings",
]
