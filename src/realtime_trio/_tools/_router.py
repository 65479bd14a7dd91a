"""Answering the model's function calls on the sideband: each `call_id` exactly once.

A call is taken once its item is complete (`response.output_item.done`, or `response.done`
listing it): `response.function_call_arguments.done` also comes when a barge-in cut the
arguments short, and such a call is never run. Its output goes back as a `function_call_output`
item, and once every call of that response is answered and the response itself is done, one
`response.create` makes the model speak about the results (the original server left the model
silent when a tool declined), never while another response is in progress (`ResponseGate`).

One router serves a session for its whole life, across every call it is attached to, so its
limits hold across attaches; an output goes back to the call its function call came from, over
whichever sideband is attached to that call by then. A function call made while the sideband
was away is found by retrieving the item an event names as its predecessor (the session asks)
and answered like the others.

Everything a session keeps here is bounded: handlers running at once (beyond the limit a call
is answered `busy` at once; beyond twice the limit it waits, unstarted, for a running one to
finish), the calls waiting, the call ids remembered, and the responses followed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableSet
from typing import Any, Protocol, TypeGuard

import trio

from ._calls import FunctionCall, ToolAnswer, function_call_output
from ._responses import ResponseGate

logger = logging.getLogger("realtime_trio.tool_calls")

Answerer = Callable[[FunctionCall], Awaitable[ToolAnswer]]
Claimer = Callable[[FunctionCall], Awaitable[bool]]
Notifier = Callable[[FunctionCall], Awaitable[None]]
Observer = Callable[[FunctionCall, Any, float], None]


class Sender(Protocol):
    """Sends client events to the live call *realtime_call*, in order; whether they went out."""

    async def __call__(self, realtime_call: str | None, *events: dict[str, Any]) -> bool: ...


RESPONSE_DONE_WAIT_SECONDS = 30.0
# Responses followed at once (one is normally in progress; the rest are never-finished ones).
MAX_RESPONSES_FOLLOWED = 64
# Calls waiting for a running one to finish, per limit of running calls.
DEFERRED_PER_RUNNING = 4
# Every event type `ToolCallRouter.on_event` looks at.
TOOL_CALL_EVENT_TYPES = frozenset(
    {
        "response.created",
        "response.output_item.done",
        "response.done",
        "conversation.item.retrieved",
        "error",
    }
)


class ToolCallRouter:
    """Routes function calls seen on one session's sideband to an answerer.

    Args:
        nursery: the session's nursery; each call is answered in a task of its own there, so
            the sideband's receive loop never waits on a tool.
        answer: produces a call's output (never raises for a tool's own failure).
        send: sends client events to a live call; False when it could not.
        answered: the call ids already taken (kept with the session's state).
        max_pending: handlers running at once; more calls are answered `busy` without one,
            and beyond twice as many they wait for a running one to finish.
        claim: asked before a call is answered, when replicas share the session: False leaves
            it unanswered here (another holder answers it, or did).
        answered_here: told once a call's output went out.
        refused: told of each call answered `busy` (its output, 0 seconds): *answer* never
            sees those, so this is how they are counted and shown.
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
        claim: Claimer | None = None,
        answered_here: Notifier | None = None,
        refused: Observer | None = None,
    ) -> None:
        self._nursery = nursery
        self._refused = refused
        self._claim = claim
        self._answered_here = answered_here
        self._answer = answer
        self._send = send
        self._answered = answered
        self._session_id = session_id
        self._responses: dict[str, _Response] = {}
        self._gate = ResponseGate(nursery)
        self._max_pending = max_pending
        self._running = 0  # tasks answering calls, handlers and `busy` answers alike
        # Calls taken but not started, oldest first: more were running than twice the limit.
        self._deferred: dict[str, tuple[FunctionCall, _Response | None]] = {}

    @property
    def running(self) -> int:
        """Tasks answering calls now (handlers and `busy` answers alike)."""
        return self._running

    def on_event(self, event: dict[str, Any], *, realtime_call: str | None = None) -> None:
        """Take one server event of *realtime_call*'s conversation (`TOOL_CALL_EVENT_TYPES`).

        A call is taken once its item is complete: `response.output_item.done` with status
        `completed`, or `response.done` listing it so (a call cut off by a barge-in or an
        incomplete response, its arguments partial, is never run); calls of out-of-band
        responses are not the server's to answer. A function call without output found by
        `conversation.item.retrieve` (it was made while the sideband was away) is taken too.
        """
        kind = event.get("type")
        gate = self._gate
        if kind == "response.output_item.done":
            response_id = event.get("response_id")
            item = event.get("item")
            if _completed_call(item) and not gate.out_of_band(response_id):
                self._take_item(item, response_id=response_id, realtime_call=realtime_call)
        elif kind == "response.created":
            response = event.get("response")
            if isinstance(response, dict):
                gate.on_created(response)
                response_id = response.get("id")
                if isinstance(response_id, str) and not gate.out_of_band(response_id):
                    self._follow(response_id)
        elif kind == "response.done":
            response = event.get("response")
            if not isinstance(response, dict):
                return
            response_id = response.get("id")
            if not gate.out_of_band(response_id):
                # Calls missed on the way (a reconnect) are taken before it counts as done.
                for item in response.get("output") or ():
                    if _completed_call(item):
                        self._take_item(item, response_id=response_id, realtime_call=realtime_call)
            finished = self._responses.get(response_id) if isinstance(response_id, str) else None
            if isinstance(response_id, str) and finished is not None:
                finished.status = str(response.get("status"))
                finished.done.set()
                if finished.calls_pending == 0 and not finished.had_calls:
                    del self._responses[response_id]
            gate.on_done(response)
        elif kind == "conversation.item.retrieved":
            item = event.get("item")
            if _completed_call(item):
                self._take_item(item, response_id=None, realtime_call=realtime_call)
        elif kind == "error" and isinstance(error := event.get("error"), dict):
            gate.on_error(error)

    def out_of_band(self, response_id: object) -> bool:
        """Whether *response_id* names an out-of-band response (not in the conversation)."""
        return self._gate.out_of_band(response_id)

    def forget_responses(self) -> None:
        """A reconnect: what was in progress before it may have ended unseen."""
        self._gate.forget_in_progress()

    def _take_item(
        self, item: dict[str, Any], *, response_id: object, realtime_call: str | None
    ) -> None:
        self._take(
            call_id=item.get("call_id"),
            name=item.get("name"),
            arguments=item.get("arguments"),
            response_id=response_id,
            realtime_call=realtime_call,
        )

    def _take(
        self,
        *,
        call_id: object,
        name: object,
        arguments: object,
        response_id: object,
        realtime_call: str | None,
    ) -> None:
        if not isinstance(call_id, str) or not call_id or call_id in self._answered:
            return
        call = FunctionCall(
            call_id=call_id,
            name=name if isinstance(name, str) else "",
            arguments=arguments if isinstance(arguments, str) else json.dumps(arguments or {}),
            response_id=response_id if isinstance(response_id, str) else None,
            realtime_call=realtime_call,
        )
        if self._running >= 2 * self._max_pending:
            if len(self._deferred) >= DEFERRED_PER_RUNNING * self._max_pending:
                # Left untaken: a later announcement of it (its response's `response.done`)
                # may find room.
                logger.warning(
                    "session %s: %d tool calls running and %d waiting; left %s (%s) untaken",
                    self._session_id,
                    self._running,
                    len(self._deferred),
                    call.call_id,
                    call.name,
                )
                return
            logger.warning(
                "session %s: %d tool calls already being answered; %s (%s) waits for one",
                self._session_id,
                self._running,
                call.call_id,
                call.name,
            )
        self._answered.add(call_id)
        response = None
        if call.response_id:
            response = self._follow(call.response_id)
            response.calls_pending += 1
            response.had_calls = True
        if self._running >= 2 * self._max_pending:
            self._deferred[call.call_id] = (call, response)
            return
        self._start(call, response)

    def _start(self, call: FunctionCall, response: _Response | None) -> None:
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
            if self._deferred:
                oldest = next(iter(self._deferred))
                self._start(*self._deferred.pop(oldest))

    async def _answer_and_deliver(
        self, call: FunctionCall, response: _Response | None, busy: bool
    ) -> None:
        if self._claim is not None and not await self._claim(call):
            logger.info(
                "session %s: call %s is not this replica's to answer",
                self._session_id,
                call.call_id,
            )
            if response is not None:
                response.calls_pending -= 1
            return
        if busy:
            message = f"Too many tool calls at once; {call.name!r} was not run. Try again."
            answer = ToolAnswer({"ok": False, "reason": "busy", "message": message})
            if self._refused is not None:
                self._refused(call, answer.output, 0.0)
        else:
            try:
                answer = await self._answer(call)
            except Exception as exc:
                # A failing tool never ends the session, and the model still gets an output.
                logger.exception("session %s: tool %s failed", self._session_id, call.name)
                answer = ToolAnswer({"ok": False, "reason": "error", "message": type(exc).__name__})
        events = [function_call_output(call, answer.output), *answer.followups]
        if response is None:
            delivered = await self._deliver(call, events)
            if delivered and answer.create_response:
                await self._request_response(call)
            return
        if response.done.is_set() and response.calls_pending == 1 and not response.next_requested:
            # The response is over and this is its last call: ask for the next response in the
            # same write as the output when no other response is in progress (the usual case,
            # and the quickest turnaround).
            response.calls_pending = 0
            self._finish(call, response)
            wanted = self._next_wanted(response, answer.create_response)
            if wanted and not self._gate.busy():
                create = self._gate.claim(self._sender(call))
                if not await self._deliver(call, [*events, create]):
                    self._gate.unclaim(create)
                return
            if await self._deliver(call, events) and wanted:
                await self._request_response(call)
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
            await self._request_response(call)

    async def _request_response(self, call: FunctionCall) -> None:
        """`response.create` to *call*'s conversation, once no response is in progress there."""
        await self._gate.create_when_free(self._sender(call))

    def _sender(self, call: FunctionCall) -> Callable[[dict[str, Any]], Awaitable[bool]]:
        async def send(event: dict[str, Any]) -> bool:
            return await self._send(call.realtime_call, event)

        return send

    async def _deliver(self, call: FunctionCall, events: list[dict[str, Any]]) -> bool:
        delivered = await self._send(call.realtime_call, *events)
        if delivered and self._answered_here is not None:
            self._nursery.start_soon(self._answered_here, call)  # never delays what follows
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


def _completed_call(item: object) -> TypeGuard[dict[str, Any]]:
    """Whether *item* is a function call whose arguments are whole (`status: completed`)."""
    return (
        isinstance(item, dict)
        and item.get("type") == "function_call"
        and item.get("status") in (None, "completed")
    )
