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
        "Save what the user has said about themselves so far (first name, last name, monthly "
        "income) to their profile. Takes no arguments: the server reads the conversation."
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


async def answer_tool_call(call: FunctionCall) -> dict[str, Any]:
    """The output for *call*. No tool runs yet, so every call is answered as unavailable."""
    return {
        "ok": False,
        "reason": "unavailable",
        "tool": call.name,
        "message": f"The tool {call.name!r} is not available yet.",
    }


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
