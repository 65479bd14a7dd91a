"""realtime-trio: a keyless backend for mobile voice apps on the OpenAI Realtime API."""

from ._config import Settings as Settings
from ._config import load_settings as load_settings
from ._http._app import create_app as create_app
from ._plugin_api import NoArguments as NoArguments
from ._plugin_api import Tool as Tool
from ._plugin_api import ToolContext as ToolContext
from ._plugin_api import ToolResult as ToolResult
from ._upstream import OpenAIClient as OpenAIClient
from ._version import __version__ as __version__
from .hookspecs import hookimpl as hookimpl

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
