"""The assistant's instructions: base instructions, tool guidance, and what is known of the user.

One place builds them, so a reconnect or a renew always carries the profile and the tools
together (the original server replaced them with tool guidance alone on connect).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._plugin_api import Tool

DEFAULT_BASE_INSTRUCTIONS = (
    "You are a warm, concise voice assistant. Speak naturally, keep answers short, and ask one "
    "question at a time."
)


def build_instructions(base: str, *, tools: Iterable[Tool], profile: Mapping[str, Any]) -> str:
    """The full instructions for a session's live call."""
    sections = [base.strip()]
    guidance = [tool.guidance for tool in tools if tool.guidance]
    if guidance:
        sections.append("Tools:\n" + "\n".join(f"- {line}" for line in guidance))
    sections.append(profile_section(profile))
    return "\n\n".join(sections)


def profile_section(profile: Mapping[str, Any]) -> str:
    known = {key: value for key, value in profile.items() if value not in (None, "", [], {})}
    if not known:
        return "What you already know about the user: nothing yet."
    lines = "\n".join(f"- {key}: {_spoken(value)}" for key, value in known.items())
    return f"What you already know about the user (do not ask for it again):\n{lines}"


def with_history(instructions: str, history_lines: list[str]) -> str:
    """Instructions for a new call that continues an earlier conversation (renew)."""
    return f"{instructions}\n\nConversation history:\n" + "\n".join(history_lines)


def _spoken(value: Any) -> str:
    """A profile value as a person would write it (lists as `a, b`, not Python's repr)."""
    if isinstance(value, list | tuple):
        return ", ".join(_spoken(item) for item in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
