"""Function tools the server registers on every call, and how their calls are answered.

For now the only tool is `extract_profile`, and every call gets a polite "unavailable" so the
model is never left waiting; the extraction and plugin issues make tools real.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FunctionTool:
    """A function the model may call: what it sees (name, description, JSON schema) and when."""

    name: str
    description: str
    parameters: dict[str, Any]
    guidance: str

    def definition(self) -> dict[str, Any]:
        """The tool as sent in `session.tools`."""
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
        }


EXTRACT_PROFILE = FunctionTool(
    name="extract_profile",
    description=(
        "Call this whenever the user has just shared something about themselves (their name, "
        "their monthly income, or any personal detail), so it is saved to their profile. "
        "Takes no arguments: the server reads the conversation itself."
    ),
    parameters={"type": "object", "properties": {}, "required": [], "additionalProperties": False},
    guidance=(
        "Call extract_profile whenever the user tells you their name or their income, "
        "then carry on the conversation naturally."
    ),
)

REGISTERED_TOOLS: tuple[FunctionTool, ...] = (EXTRACT_PROFILE,)


@dataclass(frozen=True)
class FunctionCall:
    """One call of a tool by the model, as announced on the sideband."""

    call_id: str
    name: str
    arguments: str
    response_id: str | None = None


@dataclass(frozen=True)
class ToolAnswer:
    """What answers a call: its output, and client events to send after it (before the model
    is asked to respond), such as a `session.update` carrying new instructions."""

    output: dict[str, Any]
    followups: tuple[dict[str, Any], ...] = ()


def unavailable(call: FunctionCall) -> ToolAnswer:
    return ToolAnswer(
        {
            "ok": False,
            "reason": "unavailable",
            "tool": call.name,
            "message": f"The tool {call.name!r} is not available on this server.",
        }
    )


def function_call_output(call: FunctionCall, output: dict[str, Any]) -> dict[str, Any]:
    """The client event that hands *output* back to the model for *call*."""
    return {
        "type": "conversation.item.create",
        "item": {
            "type": "function_call_output",
            "call_id": call.call_id,
            "output": json.dumps(output),
        },
    }
