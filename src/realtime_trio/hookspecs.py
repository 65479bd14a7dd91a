"""The plugin hooks, and the markers plugins use (`from realtime_trio import hookimpl`).

Hooks are called with keyword arguments, so an implementation may accept only the arguments
it needs. They are synchronous and must return quickly: observers run on the sideband's
receive path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from pydantic import BaseModel

    from ._plugin_api import Tool
    from ._transcript import TranscriptEntry

PROJECT = "realtime_trio"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# -- what the server offers the model ---------------------------------------------------


@hookspec
def rt_register_tools() -> list[Tool]:
    """Return the function tools this plugin provides (a list, possibly empty)."""
    raise NotImplementedError  # a spec: pluggy calls the implementations, never this


@hookspec(firstresult=True)
def rt_build_instructions(base: str, profile: dict[str, Any], tools: list[Tool]) -> str | None:
    """Build the session's instructions from its base instructions, profile and tools.

    Stops at the first non-None result; the default (base, tool guidance, what is known of the
    user) applies when no plugin answers.
    """


@hookspec(firstresult=True)
def rt_profile_model() -> type[BaseModel] | None:
    """Supply the pydantic model of the user profile that extraction fills.

    Stops at the first non-None result; the default is the original's first_name/last_name/income.
    """


# -- observers --------------------------------------------------------------------------


@hookspec
def rt_transcript_entry(session_id: str, entry: TranscriptEntry) -> None:
    """Observe a transcript entry once its text is final (or its transcription failed)."""


@hookspec
def rt_tool_result(session_id: str, tool: str, call_id: str, output: Any) -> None:
    """Observe the output a tool call was answered with (including error outputs)."""


@hookspec
def rt_usage(session_id: str, model: str, usage: dict[str, Any]) -> None:
    """Observe one response's usage, as the API reported it in `response.done`, with its
    `costUsd` added (null for a model with no known price)."""


@hookspec
def rt_session_ended(
    session_id: str,
    transcript: list[TranscriptEntry],
    profile: dict[str, Any],
    usage: dict[str, Any],
) -> None:
    """Observe a session that ended for good (closed, deleted, idle): its transcript in
    conversation order, its profile and its usage (`GET /session/{id}`'s `usage`), for export.
    Not called when a replica stops and another takes the session over."""
