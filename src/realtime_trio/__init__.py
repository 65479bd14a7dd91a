"""realtime-trio: a keyless backend for mobile voice apps on the OpenAI Realtime API.

This module is the package's public face: what plugins and embedding code import (`hookimpl`
marks a plugin's hook implementations; `__version__` is the installed version). Everything
else lives in private modules (`_x.py`, `_x/`) that may change without notice; the public
modules besides this one are `realtime_trio.hookspecs` (the plugin hooks),
`realtime_trio.testing` (fixtures for plugin authors), `realtime_trio.simulator` (the offline
OpenAI), `realtime_trio.serve` (running the server in-process) and `realtime_trio.cli`
(the `realtime-trio` command).
"""

from ._config import Settings as Settings
from ._config import SettingsError as SettingsError
from ._config import load_settings as load_settings
from ._http import create_app as create_app
from ._plugin_api import NoArguments as NoArguments
from ._plugin_api import Tool as Tool
from ._plugin_api import ToolContext as ToolContext
from ._plugin_api import ToolResult as ToolResult
from ._plugin_api import ToolSession as ToolSession
from ._plugins import PluginError as PluginError
from ._plugins import PluginRegistry as PluginRegistry
from ._plugins import load_plugins as load_plugins
from ._sessions import SessionManager as SessionManager
from ._transcript import TranscriptEntry as TranscriptEntry
from ._upstream import OpenAIClient as OpenAIClient
from ._version import __version__ as __version__
from .hookspecs import hookimpl as hookimpl

__all__ = [
    "NoArguments",
    "OpenAIClient",
    "PluginError",
    "PluginRegistry",
    "SessionManager",
    "Settings",
    "SettingsError",
    "Tool",
    "ToolContext",
    "ToolResult",
    "ToolSession",
    "TranscriptEntry",
    "__version__",
    "create_app",
    "hookimpl",
    "load_plugins",
    "load_settings",
]
