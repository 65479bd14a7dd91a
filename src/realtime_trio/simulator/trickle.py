"""A trickle: a steady rate of events spread over every live call, with latency probes.

A benchmark of many concurrent sessions needs each of them to carry some traffic, and to know
how fast the server answers a tool call while it does. For the given time the driver sends the
conversation mix of `mix.py` (each call its own run of turns, so its own ids) round-robin over
the calls that had an open sideband socket when it started, through the ordinary per-frame
path, and starts a probe (a tool call, as `SimCall.tool_call` makes one) at its own rate on the
next call round-robin with no response in progress and no probe pending. Probes wait for their
answers in the driver's nursery, up to `timeout_seconds` after the trickle ends, so nothing
outlives `trickle`. The mix's events are wire-only, as a blast's (see `mix.py`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import trio

from .calls import CallEnded, FunctionCall, SimCall, ToolCallResult
from .mix import ConversationMix
from .turns import ARGUMENTS_DONE, ActiveResponse

TICK_SECONDS = 0.001  # at high rates, events due within a tick go out together


@dataclass
class TrickleReport:
    """What a trickle sent, and its probes' latencies in seconds (from the moment their
    `response.function_call_arguments.done` was written to when the client's
    `function_call_output`, resp. the `response.create` after it, came off the socket)."""

    calls: int
    events_sent: int = 0
    probes_sent: int = 0
    probes_answered: int = 0
    latencies: list[float] = field(default_factory=list)
    response_create_latencies: list[float] = field(default_factory=list)

    def record(self, probe: ToolCallResult) -> None:
        sent = probe.sent_at.get(ARGUMENTS_DONE)
        if sent is None or probe.output_received_at is None:
            return
        self.probes_answered += 1
        self.latencies.append(probe.output_received_at - sent)
        if probe.response_create_received_at is not None:
            self.response_create_latencies.append(probe.response_create_received_at - sent)

    def as_json(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "eventsSent": self.events_sent,
            "probesSent": self.probes_sent,
            "probesAnswered": self.probes_answered,
            "latencies": self.latencies,
            "responseCreateLatencies": self.response_create_latencies,
        }


async def trickle(
    calls: Iterable[SimCall],
    *,
    seconds: float,
    events_per_second: float,
    probe: FunctionCall | None = None,
    probes_per_second: float = 0.0,
    timeout_seconds: float = 10.0,
) -> TrickleReport:
    """For *seconds*, send *events_per_second* events in all over the live *calls*, and start
    *probes_per_second* probe tool calls; then wait up to *timeout_seconds* for the probes'
    answers. An event counts as sent once queued on at least one socket.
    """
    live = [call for call in calls if not call.ended and call.open_sockets]
    report = TrickleReport(calls=len(live))
    if not live:
        return report
    mix = ConversationMix()
    streams = [
        mix.stream(
            conversation_id=call.conversation_id,
            session=call.session,
            previous_item_id=call.conversation.last_id,
        )
        for call in live
    ]
    probes = _Probes(live, probe, report) if probe is not None and probes_per_second > 0 else None
    start = trio.current_time()
    end = start + seconds
    events = started_probes = 0
    async with trio.open_nursery() as nursery:
        while True:
            now = trio.current_time()
            elapsed = seconds if now >= end else now - start
            for _ in range(_due(elapsed, events_per_second) - events):
                index = events % len(live)
                events += 1
                if live[index].send_raw(streams[index].next_text()):
                    report.events_sent += 1
            if probes is not None:
                for _ in range(_due(elapsed, probes_per_second) - started_probes):
                    started_probes += 1
                    probes.start_one(nursery, answer_by=end + timeout_seconds)
            if now >= end:
                break
            upcoming = [start + (events + 1) / events_per_second, end]
            if probes is not None:
                upcoming.append(start + (started_probes + 1) / probes_per_second)
            await trio.sleep_until(max(min(upcoming), now + TICK_SECONDS))
        nursery.cancel_scope.deadline = end + timeout_seconds + 1.0  # a backstop only
    return report


def _due(elapsed: float, per_second: float) -> int:
    """How many are due after *elapsed* seconds (`0.3 * 100` is 30, not 29)."""
    return math.floor(elapsed * per_second + 1e-9)


class _Probes:
    """Starts probe tool calls round-robin; each waits for its answer in the trickle's nursery."""

    def __init__(self, calls: list[SimCall], probe: FunctionCall, report: TrickleReport) -> None:
        self._calls = calls
        self._probe = probe
        self._report = report
        self._next = 0
        self._pending: set[str] = set()

    def start_one(self, nursery: trio.Nursery, *, answer_by: float) -> None:
        """Start a probe on the next call that can take one; none if no call can."""
        for _ in range(len(self._calls)):
            call = self._calls[self._next]
            self._next = (self._next + 1) % len(self._calls)
            if call.call_id in self._pending or call.active_response or not call.open_sockets:
                continue
            try:
                result = call.start_tool_call(self._probe.name, self._probe.arguments)
            except (ActiveResponse, CallEnded):
                continue
            self._pending.add(call.call_id)
            self._report.probes_sent += 1
            nursery.start_soon(self._answered, call, result, answer_by)
            return

    async def _answered(self, call: SimCall, result: ToolCallResult, answer_by: float) -> None:
        try:
            wait = max(answer_by - trio.current_time(), 0.0)
            await call.finish_tool_call(result, wait_seconds=wait)
        finally:
            self._pending.discard(call.call_id)
        self._report.record(result)
