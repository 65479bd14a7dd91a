"""Finding and registering plugins, and the registry of the tools they provide.

Built-in features are plugins too (`builtin_tools` provides `extract_profile`). Others come from
setuptools entry points in the `realtime_trio` group and from `REALTIME_PLUGINS` (module names
or `.py` file paths). A plugin that fails to load, breaks the hook contract (a hook that does
not exist, an `rt_` function without `@hookimpl`), or two tools with one name, stop start-up
with a `PluginError` whose message is one line naming the plugin(s).
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import inspect
import logging
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy
import trio
from pydantic import BaseModel

from . import _builtin_tools as builtin_tools
from . import hookspecs
from ._config import Settings, comma_list
from ._instructions import build_instructions
from ._plugin_api import Tool
from ._profile import Profile
from ._transcript import TranscriptEntry

logger = logging.getLogger("realtime_trio.plugins")

ENTRY_POINT_GROUP = "realtime_trio"
HOOK_PREFIX = "rt_"
# What the Realtime API accepts as a function name.
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class PluginError(Exception):
    """A plugin could not be loaded or conflicts with another; the message names it."""


PLUGIN_SOURCE = "plugin"


@dataclass(frozen=True)
class RegisteredTool:
    """A tool and where it comes from: a plugin (*plugin* names it), or an outside *source*
    such as `mcp:<server>`."""

    tool: Tool
    plugin: str | None
    source: str = PLUGIN_SOURCE

    @property
    def source_name(self) -> str:
        """Who provides it, for log lines: `plugin notes`, `mcp:calendar`."""
        return f"plugin {self.plugin}" if self.plugin is not None else self.source

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.tool.name,
            "description": self.tool.description,
            "parameters": self.tool.json_schema(),
            "plugin": self.plugin,
            "source": self.source,
        }


class PluginRegistry:
    """The loaded plugins: their tools, and the hooks the server calls.

    Plugins' tools are fixed at start-up. Outside sources (MCP servers) offer theirs once they
    connect and change them while the server runs (`set_source_tools`); whoever keeps live
    calls up to date waits on `tools_changed`.
    """

    def __init__(self, manager: pluggy.PluginManager, tools: dict[str, RegisteredTool]) -> None:
        self.manager = manager
        self._plugin_tools = tools
        self._source_tools: dict[str, list[RegisteredTool]] = {}
        self._tools = dict(tools)
        self.tools_version = 0
        self._changed = trio.Event()

    @property
    def tools(self) -> list[RegisteredTool]:
        return list(self._tools.values())

    def get(self, name: str) -> RegisteredTool | None:
        return self._tools.get(name)

    def definitions(self) -> list[dict[str, Any]]:
        """Every tool as sent in `session.tools` and in the `client_secrets` session config.

        Built once per change of the tools (every session sends them at least twice, and a
        JSON schema is not cheap to generate); the dicts are shared, for serialising, not for
        changing.
        """
        return list(self._definitions)

    @cached_property
    def _definitions(self) -> tuple[dict[str, Any], ...]:
        return tuple(registered.tool.definition() for registered in self._tools.values())

    def source_tools(self, source: str) -> list[str]:
        """The names of the tools *source* offers now."""
        return [registered.tool.name for registered in self._source_tools.get(source, ())]

    def set_source_tools(self, source: str, tools: Sequence[RegisteredTool]) -> list[str]:
        """Offer *tools* from *source* in place of what it offered before.

        Returns the names not offered because a plugin or another source has them already.
        """
        taken = {name for name, r in self._tools.items() if r.source != source}
        offered = [r for r in tools if r.tool.name not in taken]
        refused = [r.tool.name for r in tools if r.tool.name in taken]
        self._source_tools[source] = offered
        before = self.definitions()
        self._tools = dict(self._plugin_tools)
        for registered_tools in self._source_tools.values():
            self._tools.update((r.tool.name, r) for r in registered_tools)
        self.__dict__.pop("_definitions", None)
        if self.definitions() != before:
            self.tools_version += 1
            self._changed.set()
            self._changed = trio.Event()
        return refused

    async def tools_changed(self, seen: int) -> int:
        """Wait until the tools are no longer those of version *seen*; the new version."""
        while self.tools_version == seen:
            await self._changed.wait()
        return self.tools_version

    def instructions(self, base: str, profile: dict[str, Any]) -> str:
        tools = [registered.tool for registered in self._tools.values()]
        built = self.manager.hook.rt_build_instructions(base=base, profile=profile, tools=tools)
        return (
            built if built is not None else build_instructions(base, tools=tools, profile=profile)
        )

    @cached_property
    def profile_model(self) -> type[BaseModel]:
        model = self.manager.hook.rt_profile_model()
        return model if model is not None else Profile

    @cached_property
    def observes_transcript(self) -> bool:
        """Whether any plugin implements `rt_transcript_entry` (else finished turns are not
        even built into entries on the receive path)."""
        return bool(self.manager.hook.rt_transcript_entry.get_hookimpls())

    @cached_property
    def observes_usage(self) -> bool:
        """Whether any plugin implements `rt_usage` (else no usage copy is made per response)."""
        return bool(self.manager.hook.rt_usage.get_hookimpls())

    def transcript_entry(self, session_id: str, entry: TranscriptEntry) -> None:
        self._observe("rt_transcript_entry", session_id=session_id, entry=entry)

    def tool_result(self, session_id: str, tool: str, call_id: str, output: Any) -> None:
        self._observe(
            "rt_tool_result", session_id=session_id, tool=tool, call_id=call_id, output=output
        )

    def usage(self, session_id: str, model: str, usage: dict[str, Any]) -> None:
        self._observe("rt_usage", session_id=session_id, model=model, usage=usage)

    def session_ended(
        self,
        session_id: str,
        transcript: list[TranscriptEntry],
        profile: dict[str, Any],
        usage: dict[str, Any],
    ) -> None:
        self._observe(
            "rt_session_ended",
            session_id=session_id,
            transcript=transcript,
            profile=profile,
            usage=usage,
        )

    def _observe(self, hook: str, **kwargs: Any) -> None:
        try:
            getattr(self.manager.hook, hook)(**kwargs)
        except Exception:
            # An observer's bug is logged, never allowed to break a session.
            logger.exception("plugin hook %s failed", hook)


def load_plugins(settings: Settings, *, extra: Iterable[object] = ()) -> PluginRegistry:
    """Register the built-in plugin, installed ones, `REALTIME_PLUGINS`, and *extra* objects.

    Each plugin is checked as it is registered: every `@hookimpl` must name a hook of
    `hookspecs` (unless marked `optionalhook=True`), and every `rt_` function or method must
    carry `@hookimpl` (pluggy would silently never call it).

    Raises:
        PluginError: a plugin failed to load, breaks the hook contract, or offers a tool name
            already taken.
    """
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    manager.register(builtin_tools, name="builtin")
    if settings.plugin_entry_points:
        for entry_point in entry_points(group=ENTRY_POINT_GROUP):
            try:
                plugin = entry_point.load()
            except Exception as exc:
                raise PluginError(
                    f"plugin {entry_point.name!r} ({entry_point.value}) failed to load: "
                    f"{type(exc).__name__}: {exc}"
                ) from None
            _register(manager, plugin, entry_point.name)
    for spec in comma_list(settings.realtime_plugins):
        _register(manager, _import(spec), spec)
    for plugin in extra:
        _register(manager, plugin, _plugin_name(plugin))
    registry = PluginRegistry(manager, _collect_tools(manager))
    logger.info(
        "plugins: %s; tools: %s",
        ", ".join(name for name, _ in manager.list_name_plugin()),
        ", ".join(f"{t.tool.name} ({t.plugin})" for t in registry.tools) or "none",
    )
    return registry


def _plugin_name(plugin: object) -> str:
    """An extra plugin's name: a module's own name, else its `name` attribute, else its class's."""
    if isinstance(plugin, ModuleType):
        return plugin.__name__
    name = getattr(plugin, "name", None)
    return name if isinstance(name, str) and name else type(plugin).__name__


def _register(manager: pluggy.PluginManager, plugin: object, name: str) -> None:
    _check_marked(manager, plugin, name)
    try:
        manager.register(plugin, name=name)
    except ValueError as exc:  # registered twice, or under a name already taken
        raise PluginError(f"plugin {name!r} cannot be registered: {exc}") from None
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {name!r} is invalid: {exc}") from None
    _check_known(manager, plugin, name)


def _check_marked(manager: pluggy.PluginManager, plugin: object, name: str) -> None:
    """Refuse an `rt_` function or method of *plugin* without `@hookimpl`: pluggy registers
    only marked ones, so it would never be called. Only the plugin's own attributes are looked
    at (a module's functions, an instance's methods), never modules it imports."""
    for attribute in sorted(dir(plugin)):
        if not attribute.startswith(HOOK_PREFIX):
            continue
        if manager.parse_hookimpl_opts(plugin, attribute) is not None:
            continue
        try:
            value = inspect.getattr_static(plugin, attribute)
        except AttributeError:
            continue
        if isinstance(value, staticmethod | classmethod):
            value = value.__func__
        if not callable(value) or isinstance(value, type):
            continue
        if hasattr(value, f"{hookspecs.PROJECT}_spec"):  # a spec imported by name, not an impl
            continue
        hint = "" if attribute in _spec_names(manager) else _did_you_mean(manager, attribute)
        raise PluginError(
            f"plugin {name!r} defines {attribute}{hint} without @hookimpl, so it would never "
            "be called: mark it with @hookimpl (from realtime_trio import hookimpl)"
        )


def _check_known(manager: pluggy.PluginManager, plugin: object, name: str) -> None:
    """Refuse an implementation of a hook that has no spec (what pluggy's `check_pending`
    finds), unless it is marked `optionalhook=True`."""
    for caller in manager.get_hookcallers(plugin) or ():
        if caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if impl.plugin is plugin and not impl.optionalhook:
                raise PluginError(
                    f"plugin {name!r} implements {caller.name}, which is not a realtime-trio "
                    f"hook{_did_you_mean(manager, caller.name)}"
                )


def _spec_names(manager: pluggy.PluginManager) -> list[str]:
    return [
        hook_name
        for hook_name, caller in vars(manager.hook).items()
        if not hook_name.startswith("_") and caller.has_spec()
    ]


def _did_you_mean(manager: pluggy.PluginManager, hook_name: str) -> str:
    close = difflib.get_close_matches(hook_name, _spec_names(manager), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _import(spec: str) -> ModuleType:
    """A plugin module from a module name or a `.py` file path."""
    try:
        if spec.endswith(".py") or "/" in spec or "\\" in spec:
            path = Path(spec).expanduser().resolve()
            # Named after the whole path, so two plugins both called notes.py do not collide.
            digest = hashlib.sha1(str(path).encode(), usedforsecurity=False).hexdigest()[:8]
            module_name = f"realtime_trio_plugin_{path.stem}_{digest}"
            loader_spec = importlib.util.spec_from_file_location(module_name, path)
            if loader_spec is None or loader_spec.loader is None or not path.is_file():
                raise FileNotFoundError(f"no such file: {path}")
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[module_name] = module
            loader_spec.loader.exec_module(module)
            return module
        return importlib.import_module(spec)
    except Exception as exc:
        raise PluginError(f"plugin {spec!r} failed to load: {type(exc).__name__}: {exc}") from None


def _collect_tools(manager: pluggy.PluginManager) -> dict[str, RegisteredTool]:
    tools: dict[str, RegisteredTool] = {}
    for impl in manager.hook.rt_register_tools.get_hookimpls():  # in registration order
        plugin = impl.plugin_name
        try:
            offered = impl.function()
        except Exception as exc:
            raise PluginError(
                f"plugin {plugin!r} failed to register its tools: {type(exc).__name__}: {exc}"
            ) from None
        if offered is None:
            continue
        if not isinstance(offered, list | tuple):
            raise PluginError(
                f"plugin {plugin!r}: rt_register_tools returned {offered!r}, not a list of Tools"
            )
        for tool in offered:
            if not isinstance(tool, Tool):
                raise PluginError(f"plugin {plugin!r} returned {tool!r}, which is not a Tool")
            if not _TOOL_NAME.match(tool.name):
                raise PluginError(
                    f"plugin {plugin!r} has a tool with an invalid name {tool.name!r}"
                )
            if (problem := tool.parameters_problem()) is not None:
                raise PluginError(
                    f"plugin {plugin!r}: the parameters of tool {tool.name!r} are not a valid "
                    f"JSON Schema: {problem}"
                )
            if tool.name in tools:
                other = tools[tool.name].plugin
                raise PluginError(
                    f"tool {tool.name!r} is registered by both plugins {other!r} and {plugin!r}"
                )
            tools[tool.name] = RegisteredTool(tool, plugin)
    return tools
