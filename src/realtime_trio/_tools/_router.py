"""Answering the model's function calls on the sideband: each `call_id` exactly once.

A call is announced by `response.function_call_arguments.done` and again inside
`response.done`; either starts it, the other is ignored. Its output goes back as a
`function_call_output` item, and once every call of that response is answered and the response
itself is done, one `response.create` makes the model speak about the results (the original
server left the model silent when a tool declined).

Everything a session keeps here is bounded: handlers running at once (beyond the limit a call
is answered `busy` at once, and beyond twice the limit it is dropped with a warning), the call
ids remembered, and the responses followed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableSet
from typing import Any

import trio

from ._calls import FunctionCall, ToolAnswer, function_call_output

logger = logging.getLogger("realtime_trio.tool_calls")

Answerer = Callable[[FunctionCall], Awaitable[ToolAnswer]]
Sender = Callable[..., Awaitable[bool]]  # send(*events) -> whether they went out

RESPONSE_DONE_WAIT_SECONDS = 30.0
# Responses followed at once (one is normally in progress; the rest are never-finished ones).
MAX_RESPONSES_FOLLOWED = 64
RESPONSE_CREATE: dict[str, Any] = {"type": "response.create"}
# Every event type `ToolCallRouter.on_event` looks at.
TOOL_CALL_EVENT_TYPES = frozenset(
    {"response.created", "response.function_call_arguments.done", "response.done"}
)


class ToolCallRouter:
    """Routes function calls seen on one session's sideband to an answerer.

    Args:
        nursery: the session's nursery; each call is answered in a task of its own there, so
            the sideband's receive loop never waits on a tool.
        answer: produces a call's output (never raises for a tool's own failure).
        send: sends a client event on the sideband; False when it could not.
        answered: the call ids already taken (kept with the session's state).
        max_pending: handlers running at once; more calls are answered `busy` without one.
    """

    def __init__(
        self,
        nursery: trio.Nursery,
        *,
        answer: Answerer,
        send: Sender,
        answered: MutableSet[str],
        session_id: str,
        max_pending: int = 32,
    ) -> None:
        self._nursery = nursery
        self._answer = answer
        self._send = send
        self._answered = answered
        self._session_id = session_id
        self._responses: dict[str, _Response] = {}
        self._max_pending = max_pending
        self._running = 0  # tasks answering calls, handlers and `busy` answers alike

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "response.created":
            response_id = _response_id(event)
            if response_id:
                self._follow(response_id)
        elif kind == "response.function_call_arguments.done":
            self._take(
                call_id=event.get("call_id"),
                name=event.get("name"),
                arguments=event.get("arguments"),
                response_id=event.get("response_id"),
            )
        elif kind == "response.done":
            response = event.get("response") or {}
            response_id = _response_id(event)
            # Calls missed on the way (a reconnect) are taken before the response counts as done.
            for item in response.get("output") or []:
                if (
                    isinstance(item, dict)
                    and item.get("type") == "function_call"
                    and item.get("status") in (None, "completed")
                ):
                    self._take(
                        call_id=item.get("call_id"),
                        name=item.get("name"),
                        arguments=item.get("arguments"),
                        response_id=response_id,
                    )
            finished = self._responses.get(response_id) if response_id else None
            if finished is not None:
                finished.status = str(response.get("status"))
                finished.done.set()
                if finished.calls_pending == 0 and not finished.had_calls:
                    del self._responses[response_id]  # type: ignore[arg-type]

    def _take(
        self, *, call_id: object, name: object, arguments: object, response_id: object
    ) -> None:
        if not isinstance(call_id, str) or not call_id or call_id in self._answered:
            return
        self._answered.add(call_id)
        call = FunctionCall(
            call_id=call_id,
            name=name if isinstance(name, str) else "",
            arguments=arguments if isinstance(arguments, str) else json.dumps(arguments or {}),
            response_id=response_id if isinstance(response_id, str) else None,
        )
        if self._running >= 2 * self._max_pending:
            logger.warning(
                "session %s: %d tool calls already being answered; dropped call %s (%s)",
                self._session_id,
                self._running,
                call.call_id,
                call.name,
            )
            return
        response = None
        if call.response_id:
            response = self._follow(call.response_id)
            response.calls_pending += 1
            response.had_calls = True
        busy = self._running >= self._max_pending
        if busy:
            logger.warning(
                "session %s: %d tool calls running; answering %s (%s) busy",
                self._session_id,
                self._running,
                call.call_id,
                call.name,
            )
        self._running += 1
        self._nursery.start_soon(self._answer_call, call, response, busy)

    def _follow(self, response_id: str) -> _Response:
        """The response *response_id*, followed from now on if it was not already."""
        response = self._responses.get(response_id)
        if response is None:
            response = self._responses[response_id] = _Response()
            if len(self._responses) > MAX_RESPONSES_FOLLOWED:
                oldest = next(iter(self._responses))
                self._responses.pop(oldest).done.set()  # its waiters give up on it
        return response

    async def _answer_call(
        self, call: FunctionCall, response: _Response | None, busy: bool
    ) -> None:
        try:
            await self._answer_and_deliver(call, response, busy)
        finally:
            self._running -= 1

    async def _answer_and_deliver(
        self, call: FunctionCall, response: _Response | None, busy: bool
    ) -> None:
        if busy:
            message = f"Too many tool calls at once; {call.name!r} was not run. Try again."
            answer = ToolAnswer({"ok": False, "reason": "busy", "message": message})
        else:
            try:
                answer = await self._answer(call)
            except Exception as exc:
                # A failing tool never ends the session, and the model still gets an output.
                logger.exception("session %s: tool %s failed", self._session_id, call.name)
                answer = ToolAnswer({"ok": False, "reason": "error", "message": type(exc).__name__})
        events = [function_call_output(call, answer.output), *answer.followups]
        if response is None:
            if answer.create_response:
                events.append(RESPONSE_CREATE)
            await self._deliver(call, events)
            return
        if response.done.is_set() and response.calls_pending == 1 and not response.next_requested:
            # The response is over and this is its last call: ask for the next response in the
            # same write as the output (the usual case, and the quickest turnaround).
            response.calls_pending = 0
            self._finish(call, response)
            if self._next_wanted(response, answer.create_response):
                events.append(RESPONSE_CREATE)
            await self._deliver(call, events)
            return
        delivered = await self._deliver(call, events)
        response.calls_pending -= 1
        response.wants_response = response.wants_response or (delivered and answer.create_response)
        # Only one response may write to the conversation: wait for this one to finish. The
        # last of its calls to be answered after that asks for the next response, once.
        with trio.move_on_after(RESPONSE_DONE_WAIT_SECONDS):
            await response.done.wait()
        if response.calls_pending > 0 or response.next_requested:
            return
        self._finish(call, response)
        if self._next_wanted(response, False):
            await self._send(RESPONSE_CREATE)

    async def _deliver(self, call: FunctionCall, events: list[dict[str, Any]]) -> bool:
        delivered = await self._send(*events)
        if not delivered:
            logger.warning(
                "session %s: could not deliver the output of %s", self._session_id, call.call_id
            )
        return delivered

    def _finish(self, call: FunctionCall, response: _Response) -> None:
        response.next_requested = True
        self._responses.pop(call.response_id or "", None)

    @staticmethod
    def _next_wanted(response: _Response, this_call_wants: bool) -> bool:
        """Whether to ask for the next response: not after a barge-in, and only if a call's
        tool wants the model to speak (a tool may say it triggers the next one itself)."""
        return response.status != "cancelled" and (response.wants_response or this_call_wants)


class _Response:
    """A response the model is producing, and the function calls it made."""

    def __init__(self) -> None:
        self.done = trio.Event()
        self.status: str | None = None
        self.calls_pending = 0
        self.had_calls = False
        self.wants_response = False
        self.next_requested = False


def _response_id(event: dict[str, Any]) -> str | None:
    response = event.get("response")
    value = response.get("id") if isinstance(response, dict) else None
    return value if isinstance(value, str) else None
