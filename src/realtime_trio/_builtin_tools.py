"""The built-in plugin: `extract_profile`, through the same hooks as any other plugin."""

from __future__ import annotations

from typing import Any

from ._extraction import CoolingDown, Extracted, NoTranscript
from ._plugin_api import NoArguments, Tool, ToolContext
from .hookspecs import hookimpl

EXTRACT_PROFILE = "extract_profile"


async def extract_profile(context: ToolContext, arguments: NoArguments) -> dict[str, Any]:
    """Answers in the original server's vocabulary: ok, or cooldown / no_transcript / error."""
    outcome = await context.extract_profile(throttled=True)
    if isinstance(outcome, Extracted):
        return {"ok": True, "profile": outcome.profile}
    if isinstance(outcome, CoolingDown):
        return {
            "ok": False,
            "reason": "cooldown",
            "retryAfterSeconds": outcome.retry_after_seconds,
            "profile": outcome.profile,
        }
    if isinstance(outcome.error, NoTranscript):
        return {"ok": False, "reason": "no_transcript", "profile": dict(context.profile)}
    return {"ok": False, "reason": "error", "message": outcome.error.message}


@hookimpl
def rt_register_tools() -> list[Tool]:
    return [
        Tool(
            name=EXTRACT_PROFILE,
            description=(
                "Call this whenever the user has just shared something about themselves (their "
                "name, their monthly income, or any personal detail), so it is saved to their "
                "profile. Takes no arguments: the server reads the conversation itself."
            ),
            handler=extract_profile,
            guidance=(
                "Call extract_profile whenever the user tells you their name or their income, "
                "then carry on the conversation naturally."
            ),
            # Extraction has its own upstream deadline; this only bounds the wait for it.
            timeout_seconds=60,
        )
    ]
