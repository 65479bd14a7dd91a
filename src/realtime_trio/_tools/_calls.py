"""Function calls as the sideband announces them, and the events that answer them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FunctionCall:
    """One call of a tool by the model, as announced on the sideband.

    *realtime_call* is the live call (the WebRTC `call_id` the sideband is attached to) whose
    conversation the function call belongs to: its output can only go back there.
    """

    call_id: str
    name: str
    arguments: str
    response_id: str | None = None
    realtime_call: str | None = None


@dataclass(frozen=True)
class ToolAnswer:
    """What answers a call: its output; client events to send after it (before the model is
    asked to respond), such as a `session.update` with new instructions; and whether to ask."""

    output: Any
    followups: tuple[dict[str, Any], ...] = ()
    create_response: bool = True


def function_call_output(call: FunctionCall, output: Any) -> dict[str, Any]:
    """The client event that hands *output* back to the model for *call*."""
    return {
        "type": "conversation.item.create",
        "item": {
            "type": "function_call_output",
            "call_id": call.call_id,
            "output": json.dumps(output),
        },
    }
