"""One session: a task with its own nursery, supervising the sideband of its current call.

A `LiveSession` holds its record (profile, transcript, instructions), its nursery (the sideband,
the tasks answering tool calls, extractions) and its current sideband. Ending it closes the
sideband with a normal close frame, then cancels the nursery; so does an idle TTL.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from typing import Any

import trio

from ._config import Settings
from ._errors import RealtimeTrioError, UnknownSession
from ._extraction import (
    CoolingDown,
    Extracted,
    ExtractionScope,
    Failed,
    NoTranscript,
    Outcome,
    extract_profile,
)
from ._fresh_tasks import start_fresh, start_soon_fresh
from ._instructions import with_history
from ._lease_keeper import Hold
from ._log_context import with_log_fields
from ._metrics import Metrics, outcome_of
from ._plugins import PluginRegistry
from ._pricing import Pricing
from ._profile import merge_profiles
from ._recent_ids import RecentIds
from ._replica import Replica
from ._session_config import realtime_session_config
from ._session_events import SessionEvents
from ._sideband import ENDED, Sideband
from ._store import SessionRecord, SessionStore
from ._tools import TOOL_CALL_EVENT_TYPES, FunctionCall, ToolAnswer, ToolCallRouter
from ._tools._dispatcher import ToolDispatcher
from ._transcript import TRANSCRIPT_EVENT_TYPES, TranscriptEntry
from ._upstream import OpenAIClient
from ._usage import counts_cost

logger = logging.getLogger("realtime_trio.sessions")

# How long ending a session waits for its tasks to finish once cancelled (a tool that shields
# itself from cancellation can hold them); the caller is not held longer than the whole bound.
END_WAIT_SECONDS = 5.0
GRACEFUL_CLOSE_SECONDS = 3.0
HANGUP_SECONDS = 5.0
# The longest `LiveSession.end` makes its caller wait: the graceful close, the hang-up, then
# the wait for its tasks.
ENDING_BOUND_SECONDS = GRACEFUL_CLOSE_SECONDS + HANGUP_SECONDS + END_WAIT_SECONDS + 1.0
# How long an extraction waits for user transcriptions still in flight, so that the sentence
# that made the model call `extract_profile` is part of what gets extracted.
TRANSCRIPTION_WAIT_SECONDS = 3.0
# The usage each `response.done` and transcription reports: counted for `usage` and caps.
USAGE_EVENT_TYPES = frozenset(
    {"response.done", "conversation.item.input_audio_transcription.completed"}
)
# How long a cap's farewell response may take before the call is hung up anyway.
FAREWELL_SECONDS = 10.0
# How long a change made through the API waits to be written before it joins the next batch.
PROMPT_WRITE_SECONDS = 0.5
# Pending turns asked for again after a reconnect (the latest ones).
RESYNC_MAX_ITEMS = 20
# Unknown items asked for: remembered (each is asked once), and asked at once.
ITEMS_ASKED_REMEMBERED = 256
MAX_RETRIEVING = 16


class LiveSession:
    """One session on this replica: its record, its nursery and its current sideband."""

    # What `on_event` acts on; the sideband skips parsing everything else.
    wanted_event_types = TRANSCRIPT_EVENT_TYPES | TOOL_CALL_EVENT_TYPES | {"error"}

    def __init__(
        self,
        record: SessionRecord,
        *,
        settings: Settings,
        store: SessionStore,
        upstream: OpenAIClient,
        plugins: PluginRegistry,
        tools: ToolDispatcher,
        replica_name: str = "",
        replica: Replica | None = None,
        hold: Hold | None = None,
        pricing: Pricing | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.record = record
        self.session_id = record.session_id
        self.sideband: Sideband | None = None
        self.renewing = False
        self.finished = trio.Event()
        self._settings = settings
        self._store = store
        self._upstream = upstream
        self._plugins = plugins
        self._tools = tools
        self._instructions_changed = False
        self._transcript_changed = trio.Event()
        self.extraction = ExtractionScope(
            self._extract_and_store,
            cooldown_seconds=settings.extraction_cooldown_seconds,
            current_profile=lambda: self.record.profile,
        )
        self._scope = trio.CancelScope()
        self._nursery: trio.Nursery | None = None
        self._router: ToolCallRouter | None = None
        self._attach_lock = trio.Lock()
        self._last_active = trio.current_time()
        self._asked = RecentIds(ITEMS_ASKED_REMEMBERED)  # items retrieved, each asked once
        self._retrieving = 0
        self._end_requested = trio.Event()
        self._hang_up_at_end = False
        self._cancelling = trio.Event()  # its tasks are being cancelled: the end is near
        self.replica_name = replica_name
        # With a shared store: this replica's part in it, and its hold on this session.
        self._replica = replica
        self.hold = hold
        # Its record stays when it ends here: handed over, or its hold lost to another replica.
        self.kept = False
        # It ended for good (asked to, or idle), not merely cancelled with its replica.
        self.concluded = False
        self._pricing = pricing if pricing is not None else Pricing({})
        self.record.usage.pricing = self._pricing
        self._metrics = metrics
        if metrics is not None:
            self.record.usage.counted = self._count_in_metrics
        self.events = SessionEvents(self.session_id)
        self._capping = False  # a cap is ending the call
        # The next `response.done`, made only when a farewell waits for it.
        self._response_done: trio.Event | None = None

    # -- what the session says upstream -------------------------------------------------

    def instructions(self, *, history: list[str] | None = None) -> str:
        """The call's instructions: base, tool guidance, profile, and the conversation history
        given at the last renew (or *history*, for the renew being made)."""
        text = self._plugins.instructions(self.record.base_instructions, self.record.profile)
        history = history if history is not None else self.record.history
        return with_history(text, history) if history is not None else text

    def tool_definitions(self) -> list[dict[str, Any]]:
        return self._plugins.definitions()

    def client_secret_config(self, instructions: str | None = None) -> dict[str, Any]:
        record = self.record
        return realtime_session_config(
            self._settings,
            model=record.model,
            voice=record.voice,
            enable_transcription=record.enable_transcription,
            instructions=instructions if instructions is not None else self.instructions(),
            tools=self.tool_definitions(),
        )

    # -- SidebandHost ---------------------------------------------------------------------

    def sideband_token(self) -> str:
        if self._settings.sideband_auth == "client_secret" and self.record.client_secret:
            return self.record.client_secret
        key = self._settings.openai_api_key
        return key.get_secret_value() if key is not None else ""

    def session_update(self) -> dict[str, Any]:
        session: dict[str, Any] = {
            "type": "realtime",
            "instructions": self.instructions(),
            "tools": self.tool_definitions(),
            "tool_choice": "auto",
        }
        if self.record.enable_transcription:
            transcription = {"model": self._settings.transcription_model}
            session["audio"] = {"input": {"transcription": transcription}}
        return {"type": "session.update", "session": session}

    def resync_events(self) -> list[dict[str, Any]]:
        if self._router is not None:
            self._router.forget_responses()
        return [
            {"type": "conversation.item.retrieve", "item_id": item_id}
            for item_id in self.record.transcript.pending_item_ids(RESYNC_MAX_ITEMS)
        ]

    def touch(self) -> None:
        """Note activity (API use, sideband events): the idle TTL counts from the last."""
        self._last_active = trio.current_time()

    def on_event(self, event: dict[str, Any]) -> None:
        """One server event from the sideband (only `wanted_event_types` come here).

        Runs once per event on the receive path, so waiters are woken and observers called
        only when a turn became final, not on every delta.
        """
        kind = event["type"]
        if kind in USAGE_EVENT_TYPES:
            self._count_usage(kind, event)
        router = self._router
        if kind in TRANSCRIPT_EVENT_TYPES and not (
            router is not None and router.out_of_band(event.get("response_id"))
        ):
            self._follow_conversation(kind, event)
        if kind in TOOL_CALL_EVENT_TYPES and router is not None:
            # Events only come from the sideband of the call the record names: attaching
            # another call waits for the previous sideband to finish first.
            router.on_event(event, realtime_call=self.record.call_id)

    # -- usage and caps ------------------------------------------------------------------

    def _count_usage(self, kind: str, event: dict[str, Any]) -> None:
        """Add what a response or a transcription used; past `MAX_SESSION_COST_USD`, end the
        call."""
        usage = self.record.usage
        if kind == "response.done":
            if self._response_done is not None:
                self._response_done.set()
                self._response_done = None
            response = event.get("response")
            raw = response.get("usage") if isinstance(response, dict) else None
            if not isinstance(raw, dict):
                return
            model = self.record.model
            if self._plugins.observes_usage:  # a plugin wants this response's usage now
                counts = usage.count_response(model, raw)
                price = self._pricing.price(model)
                cost = None if price is None or counts is None else counts_cost(counts, price)
                self._plugins.usage(self.session_id, model, {**raw, "costUsd": cost})
            else:
                usage.note(model, raw, response=True)
        else:
            usage.note(self._settings.transcription_model, event.get("usage"), response=False)
        if self._replica is not None:
            self._replica.changed(self)
        if self.events:
            self.events.publish({"type": "usage", "usage": usage.as_json()})
        cap = self._settings.max_session_cost_usd
        if cap and (cost := usage.cost_usd) is not None and cost >= cap:
            self._start_cap("max_session_cost_usd")

    def _count_in_metrics(self, model: str, counts: tuple[int, ...]) -> None:
        if self._metrics is not None:
            self._metrics.usage(model, counts, self._pricing.price(model))

    def _start_cap(self, reason: str) -> None:
        if not self._capping and self._nursery is not None and self.record.call_id:
            self._capping = True
            self._nursery.start_soon(self._end_call_for_cap, reason, self.record.call_id)

    async def _limit_call(self, call_id: str) -> None:
        """End *call_id* `MAX_CALL_SECONDS` after it was attached (on whichever replica)."""
        started = self.record.call_started_at or time.time()
        await trio.sleep(max(0.0, started + self._settings.max_call_seconds - time.time()))
        if self.record.call_id == call_id:
            self._start_cap("max_call_seconds")

    async def _end_call_for_cap(self, reason: str, call_id: str) -> None:
        """Hang the call up for *reason*, after one farewell response if one is configured;
        the sideband then shows why (`endedBy`)."""
        logger.warning(
            "session %s: %s reached; hanging up call %s", self.session_id, reason, call_id
        )
        self.record.ended_by = reason
        farewell = self._settings.cap_farewell_instructions
        sideband = self.sideband
        if farewell and sideband is not None and sideband.call_id == call_id:
            done = self._response_done = self._response_done or trio.Event()
            create = {"type": "response.create", "response": {"instructions": farewell}}
            if await sideband.send_if_connected(create):
                with trio.move_on_after(FAREWELL_SECONDS):
                    await done.wait()
        if self.record.call_id == call_id:
            await self._hang_up()
        if self.sideband is not None and self.sideband.call_id == call_id:
            self.sideband.stop()
        await self.record_changed()
        self._capping = False

    def _follow_conversation(self, kind: str, event: dict[str, Any]) -> None:
        """The transcript takes the event; an item it names as the previous one but never saw
        (made while the sideband was away, or before it attached) is asked for."""
        transcript = self.record.transcript
        previous = event.get("previous_item_id")
        if isinstance(previous, str) and not transcript.knows(previous):
            self._retrieve(previous)
        applied = transcript.apply(event)
        if applied and self._replica is not None:
            self._replica.changed(self)
        if applied and self.events:
            self._publish_item(kind, event)
        if applied and (transcript.has_finalized or kind == "conversation.item.deleted"):
            self._transcript_changed.set()
            self._transcript_changed = trio.Event()
            observes = self._plugins.observes_transcript
            if observes or self.events:
                for entry in transcript.take_finalized():
                    if observes:
                        self._plugins.transcript_entry(self.session_id, entry)
                    if self.events:
                        self.events.publish(
                            {"type": "transcript.completed", "entry": entry.as_json()}
                        )
            else:
                transcript.forget_finalized()

    def _publish_item(self, kind: str, event: dict[str, Any]) -> None:
        """A turn that appeared or was cut short, for the event stream."""
        if kind == "conversation.item.truncated":
            self.events.publish(
                {
                    "type": "transcript.truncated",
                    "itemId": event.get("item_id"),
                    "audioEndMs": event.get("audio_end_ms"),
                }
            )
        elif kind in ("conversation.item.added", "conversation.item.created"):
            item = event.get("item")
            if isinstance(item, dict) and item.get("type") == "message":
                self.events.publish(
                    {"type": "transcript.added", "itemId": item.get("id"), "role": item.get("role")}
                )

    def _retrieve(self, item_id: str) -> None:
        """Ask upstream for *item_id*, once (`conversation.item.retrieve`): a user or assistant
        turn then takes its place in the transcript, and a function call with no output yet is
        answered. The API replays nothing a sideband missed, so this is how it is found."""
        if item_id in self._asked or self._nursery is None or self._retrieving >= MAX_RETRIEVING:
            return
        self._asked.add(item_id)
        self._retrieving += 1
        self._nursery.start_soon(self._send_retrieve, item_id)

    async def _send_retrieve(self, item_id: str) -> None:
        try:
            sideband = self.sideband
            if sideband is not None:
                await sideband.send_if_connected(
                    {"type": "conversation.item.retrieve", "item_id": item_id}
                )
        finally:
            self._retrieving -= 1

    # -- tools and extraction ---------------------------------------------------------------

    async def answer_tool_call(self, call: FunctionCall) -> ToolAnswer:
        """Answer a function call through the dispatcher (every failure is an error output),
        with the `session.update` its tool made necessary."""
        started = trio.current_time()
        result = await self._tools.run(call, self)
        self._observe_tool_call(call, result.output, trio.current_time() - started)
        self._plugins.tool_result(self.session_id, call.name, call.call_id, result.output)
        followups: tuple[dict[str, Any], ...] = ()
        if self._instructions_changed:
            self._instructions_changed = False
            followups = (self.instructions_update(),)
        return ToolAnswer(
            result.output, followups=followups, create_response=result.create_response
        )

    def _observe_tool_call(self, call: FunctionCall, output: Any, seconds: float) -> None:
        """Count an answered call and show it to the session's listeners."""
        outcome = outcome_of(output)
        if self._metrics is not None:
            self._metrics.tool_call(call.name, outcome, seconds)
        if self.events:
            self.events.publish(
                {
                    "type": "tool_call",
                    "callId": call.call_id,
                    "name": call.name,
                    "arguments": call.arguments,
                    "outcome": outcome,
                    "output": output,
                    "ms": round(seconds * 1000, 1),
                }
            )

    async def _send_to_call(self, realtime_call: str | None, *events: dict[str, Any]) -> bool:
        """Send *events* to *realtime_call* over the sideband attached to it now; False when
        none is (the session moved to another call) or it could not."""
        sideband = self.sideband
        if sideband is None or sideband.call_id != realtime_call:
            return False
        return await sideband.send(*events)

    # -- ToolSession: what a ToolContext may do ---------------------------------------------

    def profile_snapshot(self) -> dict[str, Any]:
        return dict(self.record.profile)

    def transcript_entries(self) -> list[TranscriptEntry]:
        return self.record.transcript.entries()

    async def update_profile(self, changes: dict[str, Any]) -> dict[str, Any]:
        self.record.profile = merge_profiles(self.record.profile, changes)
        self._profile_changed()
        await self.record_changed()
        return self.record.profile

    async def set_base_instructions(self, text: str) -> None:
        self.record.base_instructions = text
        self._instructions_changed = True
        await self.record_changed()

    async def extract_now(self) -> dict[str, Any]:
        """Extract at once (no cooldown), push the new instructions, and return the profile.

        Raises:
            NoTranscript: nothing said yet (upstream is not called).
            UpstreamError, ExtractionFailed: the stored profile is unchanged.
        """
        if not self.record.transcript.history_lines():
            raise NoTranscript()
        outcome = await self.request_extraction(throttled=False)
        if isinstance(outcome, Failed):
            raise outcome.error
        # Not connected: the instructions wait for the next attach and for renew.
        sideband = self.sideband
        if sideband is not None and await sideband.send_if_connected(self.instructions_update()):
            self._instructions_changed = False
        return self.record.profile

    async def record_changed(self) -> None:
        """The record changed (a profile, instructions, a call, a renew): in a shared store it
        is written at once, so a read on another replica right after sees it; if the store does
        not answer quickly, it goes out with the next batch instead."""
        if self._replica is None:
            await self._store.save(self.record)
            return
        written = False
        with trio.move_on_after(PROMPT_WRITE_SECONDS):
            written = await self._replica.flush(self)
        if not written:
            self._replica.changed(self)

    def sideband_changed(self) -> None:
        if self._replica is not None:
            self._replica.changed(self)
        if self.events:
            self.events.publish({"type": "sideband", "sideband": self._sideband_with_holder()})

    def sideband_view(self) -> dict[str, Any]:
        view = self.sideband.describe() if self.sideband else {"state": "idle"}
        if self.record.ended_by is not None:
            view["endedBy"] = self.record.ended_by
        return view

    async def _claim_call(self, call: FunctionCall) -> bool:
        """Whether to answer *call*: with a shared store, only while this replica's hold is
        the session's (a replica paused past its lease must not answer what its successor
        does) and only once across holders."""
        if self._replica is None or self.hold is None:
            return True
        lease = self.hold.lease
        records = self._replica.tables.records
        try:
            claimed = await self._replica.call(
                records.claim_call(
                    self.session_id, call.call_id, lease, self._replica.record_ttl_seconds
                )
            )
        except RealtimeTrioError:
            return not self.hold.lost.is_set()  # the store away: nobody can have taken over
        if claimed is None:
            self._replica.keeper.drop(self.hold)
            self.hold.lost.set()
        return bool(claimed)

    async def _call_answered(self, call: FunctionCall) -> None:
        if self._replica is None or self.hold is None:
            return
        # The store away: a successor may answer it again, but it is never lost.
        with (
            trio.move_on_after(self._settings.tool_timeout_seconds),
            contextlib.suppress(RealtimeTrioError),
        ):
            await self._replica.call(
                self._replica.tables.records.call_answered(
                    self.session_id, call.call_id, self.hold.lease, self._replica.record_ttl_seconds
                )
            )

    def instructions_update(self) -> dict[str, Any]:
        """The `session.update` that pushes the instructions in force now (published to the
        event stream as it is built: it is built to be sent)."""
        instructions = self.instructions()
        if self.events:
            self.events.publish({"type": "instructions", "instructions": instructions})
        return {
            "type": "session.update",
            "session": {"type": "realtime", "instructions": instructions},
        }

    def tools_changed(self) -> None:
        """The tools on offer changed (an MCP server connected, or changed its list): the live
        call gets them, with the instructions that go with them, in a `session.update`."""
        if (
            self._nursery is not None
            and self.sideband is not None
            and not self.ending
            and not self.finished.is_set()
        ):
            self._nursery.start_soon(self._push_tools)

    async def _push_tools(self) -> None:
        sideband = self.sideband
        if sideband is not None:
            update = self.instructions_update()
            tools = update["session"]["tools"] = self.tool_definitions()
            if self.events:
                self.events.publish({"type": "tools", "tools": [t["name"] for t in tools]})
            await sideband.send_if_connected(update)

    def _profile_changed(self) -> None:
        self._instructions_changed = True
        if self.events:
            self.events.publish({"type": "profile", "profile": dict(self.record.profile)})

    async def request_extraction(self, *, throttled: bool) -> Outcome:
        if self._nursery is None or self.finished.is_set():
            raise UnknownSession()
        outcome = await self.extraction.request(self._nursery, throttled=throttled)
        if self._metrics is not None:
            label = {Extracted: "extracted", CoolingDown: "cooldown"}.get(type(outcome), "failed")
            self._metrics.extractions.labels(label).inc()
        return outcome

    async def _extract_and_store(self) -> dict[str, Any]:
        if self.record.enable_transcription:
            with trio.move_on_after(TRANSCRIPTION_WAIT_SECONDS):
                while self.record.transcript.pending_user_turns():
                    await self._transcript_changed.wait()
        model = self._settings.extraction_model
        profile = await extract_profile(
            self._upstream,
            model=model,
            profile_model=self._plugins.profile_model,
            transcript_lines=self.record.transcript.history_lines(),
            previous=self.record.profile,
            on_usage=lambda usage: self.record.usage.add_extraction(
                usage, self._pricing.price(model)
            ),
        )
        self.record.profile = profile
        self._profile_changed()
        await self.record_changed()
        logger.debug("session %s: profile extracted", self.session_id)
        return profile

    # -- lifecycle ------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Hold the session's nursery open until the session is ended or has been idle for
        `SESSION_IDLE_TTL_SECONDS`; then close its sideband, hang up its call if asked, and
        cancel what is left.

        The session ends itself once asked (`end`), so a caller that gives up meanwhile (a
        client that hangs up during `DELETE /session/{id}`) cannot leave it half-ended.
        """
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    # One router for the session's whole life: its limits hold across attaches.
                    self._router = ToolCallRouter(
                        nursery,
                        answer=self.answer_tool_call,
                        send=self._send_to_call,
                        answered=self.record.answered_call_ids,
                        session_id=self.session_id,
                        max_pending=self._settings.session_max_pending_tool_calls,
                        claim=self._claim_call if self._replica is not None else None,
                        answered_here=self._call_answered if self._replica is not None else None,
                        refused=self._observe_tool_call,
                    )
                    if self.hold is not None:
                        nursery.start_soon(self._let_go_when_lost, self.hold)
                    task_status.started()
                    hang_up = await self._until_ended()
                    self.concluded = not self.kept
                    await self._close_sideband()
                    if hang_up:
                        await self._hang_up()
                    self._cancelling.set()
                    nursery.cancel_scope.cancel()
        finally:
            self.events.close()
            self.finished.set()

    async def _let_go_when_lost(self, hold: Hold) -> None:
        """Another replica holds the session now: stop acting on it, keep its record."""
        await hold.lost.wait()
        logger.warning("session %s: held by another replica now; letting it go", self.session_id)
        self.kept = True
        if not self._end_requested.is_set():
            self._hang_up_at_end = False
            self._end_requested.set()

    async def _until_ended(self) -> bool:
        """Wait for `end` or the idle TTL; whether the call is to be hung up."""
        ttl = self._settings.session_idle_ttl_seconds
        while True:
            # Activity only moves the deadline: one wake-up per TTL at most, not a poll.
            deadline = self._last_active + ttl if ttl else math.inf
            with trio.move_on_at(deadline):
                await self._end_requested.wait()
                return self._hang_up_at_end
            if self._last_active + ttl <= trio.current_time():
                logger.info("session %s: idle for %gs, ending it", self.session_id, ttl)
                return self._settings.hangup_on_session_end

    async def end(self, *, hang_up: bool = False, keep_record: bool = False) -> None:
        """End the session: close its sideband gracefully, hang up its call if *hang_up*, then
        cancel its tasks; return once it has ended. With *keep_record* (a replica stopping, or
        handing the session over) it ends here only: its record stays for the next holder.

        The session does this itself, so it ends even if the caller is cancelled meanwhile, and
        the wait is bounded (`ENDING_BOUND_SECONDS`): a tool that shields itself from
        cancellation cannot hold the caller, only delay the session's own end.
        """
        if not self._end_requested.is_set():
            self._hang_up_at_end = hang_up
            self.kept = keep_record
            self._end_requested.set()
        if self._nursery is None:
            self._scope.cancel()  # not running yet: nothing to close gracefully
        with trio.move_on_after(GRACEFUL_CLOSE_SECONDS + HANGUP_SECONDS + 1):
            await self._cancelling.wait()
        with trio.move_on_after(END_WAIT_SECONDS) as waited:
            await self.finished.wait()
        if waited.cancelled_caught:
            logger.warning(
                "session %s: its tasks did not finish within %gs of being cancelled (a tool "
                "ignores cancellation?); it ends when they do",
                self.session_id,
                END_WAIT_SECONDS,
            )

    @property
    def ending(self) -> bool:
        """Whether the session was ended (its tasks may still be finishing)."""
        return self._end_requested.is_set() or self._scope.cancel_called

    def cancel(self) -> None:
        """End the session without waiting or a graceful close (it may not have started)."""
        self._scope.cancel()

    async def _hang_up(self) -> None:
        """End the session's call upstream, so it stops running on the owner's key with nobody
        answering its tools; a call already gone is fine, and a failure is only logged."""
        call_id = self.record.call_id
        if not call_id:
            return
        with trio.move_on_after(HANGUP_SECONDS) as waited:
            try:
                await self._upstream.hang_up(call_id)
            except RealtimeTrioError as exc:
                logger.warning(
                    "session %s: could not hang up call %s: %s",
                    self.session_id,
                    call_id,
                    exc.message,
                )
        if waited.cancelled_caught:
            logger.warning(
                "session %s: hanging up call %s took over %gs; left to upstream",
                self.session_id,
                call_id,
                HANGUP_SECONDS,
            )

    async def _close_sideband(self) -> None:
        sideband = self.sideband
        if sideband is not None:
            sideband.stop()
            with trio.move_on_after(GRACEFUL_CLOSE_SECONDS):
                await sideband.finished.wait()

    async def attach(self, call_id: str, *, catch_up: bool = False) -> Sideband:
        """Attach the sideband to *call_id*, replacing one attached to another call.

        Posting the call it is already attached to changes nothing (no second socket).
        *catch_up*: the call went on without this replica (a takeover): ask for what it missed
        from the first connect on.
        """
        async with self._attach_lock:
            current = self.sideband
            if current is not None and current.call_id == call_id and current.state not in ENDED:
                return current
            if current is not None:
                current.stop()
                await current.finished.wait()
            if self._nursery is None or self.finished.is_set():
                raise UnknownSession()
            if self.record.call_id != call_id or self.record.call_started_at is None:
                self.record.call_id, self.record.call_started_at = call_id, time.time()
                self.record.ended_by = None
            await self.record_changed()
            if self._settings.max_call_seconds:
                start_soon_fresh(self._nursery, self._limit_call, call_id)
            sideband = Sideband(
                self,
                call_id=call_id,
                settings=self._settings,
                catch_up=catch_up,
                metrics=self._metrics,
            )
            self.sideband = sideband
            await start_fresh(self._nursery, with_log_fields(sideband.run, call_id=call_id))
            return sideband

    def describe(self) -> dict[str, Any]:
        record = self.record
        return {
            "sessionId": record.session_id,
            "callId": record.call_id,
            "expiresAt": record.expires_at,
            "model": record.model,
            "voice": record.voice,
            "instructions": self.instructions(),
            "profile": record.profile,
            "transcript": [entry.as_json() for entry in record.transcript.entries()],
            "transcriptDropped": record.transcript.dropped_entries,
            "usage": record.usage.as_json(),
            "sideband": self._sideband_with_holder(),
        }

    def _sideband_with_holder(self) -> dict[str, Any]:
        """The sideband's state, and with a shared store, the replica holding it (this one)."""
        view = self.sideband_view()
        return {**view, "replica": self.replica_name} if self._replica is not None else view
