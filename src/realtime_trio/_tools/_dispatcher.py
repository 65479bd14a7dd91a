"""Running the tool a function call names: every way it can go wrong becomes an output.

The model must always get an output it can act on, and a plugin's bug must never end a session:
arguments are validated against the tool's parameters before its handler runs, the handler runs
under its timeout, and an unknown tool, invalid arguments, a timeout, an exception, an output that
is not JSON or one over `TOOL_OUTPUT_MAX_BYTES` each become an error output naming what happened.
"""

from __future__ import annotations

import json
import logging
from typing import final

import httpx
import trio

from .._plugin_api import ToolContext, ToolResult, ToolSession
from .._plugins import PluginRegistry, RegisteredTool
from .._tool_arguments import InvalidArguments
from ._calls import FunctionCall

logger = logging.getLogger("realtime_trio.sessions")


@final
class ToolDispatcher:
    """Dispatches function calls to the handlers of the registered tools; one per server.

    Args:
        plugins: the registered tools.
        http: the pooled HTTP client tools are handed (`ToolContext.http`).
        timeout_seconds: `TOOL_TIMEOUT_SECONDS`, for tools that set no timeout of their own.
        output_max_bytes: `TOOL_OUTPUT_MAX_BYTES`.
    """

    def __init__(
        self,
        plugins: PluginRegistry,
        *,
        http: httpx.AsyncClient,
        timeout_seconds: float,
        output_max_bytes: int,
    ) -> None:
        self._plugins = plugins
        self._http = http
        self._timeout_seconds = timeout_seconds
        self._output_max_bytes = output_max_bytes

    async def run(self, call: FunctionCall, session: ToolSession) -> ToolResult:
        """The output for *call*, made by its tool's handler in this task, or an error output.

        Never raises for a tool's failure; cancellation (the session ending) passes through.
        """
        registered = self._plugins.get(call.name)
        if registered is None:
            known = ", ".join(t.tool.name for t in self._plugins.tools)
            message = f"There is no tool named {call.name!r}. Available tools: {known}."
            return _error("unknown_tool", message)
        tool = registered.tool
        try:
            arguments = tool.parse_arguments(call.arguments)
        except InvalidArguments as exc:
            return ToolResult(exc.output())
        context = ToolContext(session, call_id=call.call_id, http=self._http)
        timeout = (
            tool.timeout_seconds if tool.timeout_seconds is not None else self._timeout_seconds
        )
        try:
            with trio.fail_after(timeout):
                result = await tool.handler(context, arguments)
        except trio.TooSlowError:
            logger.warning(
                "session %s: tool %s (%s) timed out after %gs",
                session.session_id,
                tool.name,
                registered.source_name,
                timeout,
            )
            message = f"The tool {tool.name!r} did not answer within {timeout:g} seconds."
            return _error("timeout", message)
        except Exception as exc:
            logger.exception(
                "session %s: tool %s (%s) failed",
                session.session_id,
                tool.name,
                registered.source_name,
            )
            return _error("error", f"The tool {tool.name!r} failed: {type(exc).__name__}.")
        if not isinstance(result, ToolResult):
            result = ToolResult(result)
        return self._checked(result, registered, session.session_id)

    def _checked(
        self, result: ToolResult, registered: RegisteredTool, session_id: str
    ) -> ToolResult:
        """*result*, or an error output if its output is not JSON or is over the size limit."""
        tool = registered.tool
        try:
            size = len(json.dumps(result.output).encode())
        except (TypeError, ValueError):
            logger.error(
                "session %s: tool %s returned an output that is not JSON", session_id, tool.name
            )
            return _error("error", f"The tool {tool.name!r} returned an output that is not JSON.")
        limit = self._output_max_bytes
        if size > limit:
            # Cut JSON would not parse and a huge item fills the model's context: say so instead.
            logger.warning(
                "session %s: tool %s (%s) returned %d bytes, over the %d-byte limit",
                session_id,
                tool.name,
                registered.source_name,
                size,
                limit,
            )
            message = (
                f"The tool {tool.name!r} returned {size} bytes, more than the limit of {limit}."
            )
            return _error("output_too_large", message)
        return result


def _error(reason: str, message: str) -> ToolResult:
    return ToolResult({"ok": False, "reason": reason, "message": message})
