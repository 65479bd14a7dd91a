"""Function calls: routing what the sideband announces, and running the tools that answer.

- `_calls.py`: a function call as announced, its answer, the event that carries it
- `_router.py`: `ToolCallRouter`, one per session: each call answered once, outputs sent back
  to the call they came from, `response.create` when a response's calls are all answered,
  bounded (`busy` beyond `SESSION_MAX_PENDING_TOOL_CALLS`)
- `_dispatcher.py`: `ToolDispatcher`, one per server: arguments validated, the handler run
  under its timeout, every failure shaped into an output the model can act on
"""

from ._calls import FunctionCall as FunctionCall
from ._calls import ToolAnswer as ToolAnswer
from ._calls import function_call_output as function_call_output
from ._router import TOOL_CALL_EVENT_TYPES as TOOL_CALL_EVENT_TYPES
from ._router import ToolCallRouter as ToolCallRouter

__all__ = [
    "TOOL_CALL_EVENT_TYPES",
    "FunctionCall",
    "ToolAnswer",
    "ToolCallRouter",
    "function_call_output",
]
