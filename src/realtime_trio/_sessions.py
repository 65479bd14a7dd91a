"""Sessions: each one a task with its own nursery, supervising the sideband of its current call.

`SessionManager.run` owns a nursery for the server's lifetime; every session runs in it as
one task (`LiveSession.run`) whose nursery holds the session's sideband and the tasks that
answer its tool calls. Ending a session cancels its scope, which closes its sideband with a
normal close frame; shutting the server down cancels the manager, which ends every session.
A session's failure is logged and ends that session only.
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from typing import Any

import trio

from ._config import Settings
from ._errors import RenewInProgress, SessionLimitReached, ShuttingDown, UnknownSession
from ._extraction import (
    ExtractionScope,
    Failed,
    NoTranscript,
    Outcome,
    extract_profile,
)
from ._fresh_tasks import TaskNotStarted, start_fresh
from ._instructions import DEFAULT_BASE_INSTRUCTIONS, with_history
from ._plugins import PluginRegistry
from ._profile import empty_profile, merge_profiles
from ._session_config import realtime_session_config
from ._sideband import Sideband, SidebandState
from ._store import SessionRecord, SessionStore
from ._tools import TOOL_CALL_EVENT_TYPES, FunctionCall, ToolAnswer, ToolCallRouter
from ._tools._dispatcher import ToolDispatcher
from ._transcript import TRANSCRIPT_EVENT_TYPES, Transcript, TranscriptEntry
from ._upstream import ClientSecret, OpenAIClient

logger = logging.getLogger("realtime_trio.sessions")

STORE_CLEANUP_SECONDS = 5.0
# How long ending a session waits for its tasks to finish once cancelled (a tool that shields
# itself from cancellation can hold them); the caller is not held longer than this.
END_WAIT_SECONDS = 5.0
GRACEFUL_CLOSE_SECONDS = 3.0
# The longest `LiveSession.end` takes: the graceful close, then the wait for its tasks.
ENDING_BOUND_SECONDS = GRACEFUL_CLOSE_SECONDS + END_WAIT_SECONDS + 1.0
# How long an extraction waits for user transcriptions still in flight, so that the sentence
# that made the model call `extract_profile` is part of what gets extracted.
TRANSCRIPTION_WAIT_SECONDS = 3.0
# Pending turns asked for again after a reconnect (the latest ones).
RESYNC_MAX_ITEMS = 20


def new_session_id() -> str:
    """An unguessable session id: 192 random bits, URL-safe."""
    return secrets.token_urlsafe(24)


_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{32}")


def is_session_id(value: object) -> bool:
    """Whether *value* has the form of an id `new_session_id` makes (checked before any
    lookup: a malformed id is unknown without touching the store)."""
    return isinstance(value, str) and _SESSION_ID.fullmatch(value) is not None


@dataclass(frozen=True)
class SessionOptions:
    """What a client chose for its session when creating it."""

    model: str | None = None
    voice: str | None = None
    enable_transcription: bool = False
    instructions: str | None = None


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
        if kind in TRANSCRIPT_EVENT_TYPES:
            transcript = self.record.transcript
            if transcript.apply(event) and (
                transcript.has_finalized or kind == "conversation.item.deleted"
            ):
                self._transcript_changed.set()
                self._transcript_changed = trio.Event()
                if self._plugins.observes_transcript:
                    for entry in transcript.take_finalized():
                        self._plugins.transcript_entry(self.session_id, entry)
                else:
                    transcript.forget_finalized()
        elif kind in TOOL_CALL_EVENT_TYPES and self._router is not None:
            # Events only come from the sideband of the call the record names: attaching
            # another call waits for the previous sideband to finish first.
            self._router.on_event(event, realtime_call=self.record.call_id)

    # -- tools and extraction ---------------------------------------------------------------

    async def answer_tool_call(self, call: FunctionCall) -> ToolAnswer:
        """Answer a function call through the dispatcher (every failure is an error output),
        with the `session.update` its tool made necessary."""
        result = await self._tools.run(call, self)
        self._plugins.tool_result(self.session_id, call.name, call.call_id, result.output)
        followups: tuple[dict[str, Any], ...] = ()
        if self._instructions_changed:
            self._instructions_changed = False
            followups = (self.instructions_update(),)
        return ToolAnswer(
            result.output, followups=followups, create_response=result.create_response
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
        self._instructions_changed = True
        await self._store.save(self.record)
        return self.record.profile

    async def set_base_instructions(self, text: str) -> None:
        self.record.base_instructions = text
        self._instructions_changed = True
        await self._store.save(self.record)

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

    def instructions_update(self) -> dict[str, Any]:
        return {
            "type": "session.update",
            "session": {"type": "realtime", "instructions": self.instructions()},
        }

    async def request_extraction(self, *, throttled: bool) -> Outcome:
        if self._nursery is None or self.finished.is_set():
            raise UnknownSession()
        return await self.extraction.request(self._nursery, throttled=throttled)

    async def _extract_and_store(self) -> dict[str, Any]:
        if self.record.enable_transcription:
            with trio.move_on_after(TRANSCRIPTION_WAIT_SECONDS):
                while self.record.transcript.pending_user_turns():
                    await self._transcript_changed.wait()
        profile = await extract_profile(
            self._upstream,
            model=self._settings.extraction_model,
            profile_model=self._plugins.profile_model,
            transcript_lines=self.record.transcript.history_lines(),
            previous=self.record.profile,
        )
        self.record.profile = profile
        self._instructions_changed = True
        await self._store.save(self.record)
        logger.info("session %s: profile extracted", self.session_id)
        return profile

    # -- lifecycle ------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Hold the session's nursery open until the session is ended or has been idle for
        `SESSION_IDLE_TTL_SECONDS`."""
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
                    )
                    task_status.started()
                    await self._until_idle()
                    logger.info(
                        "session %s: idle for %gs, ending it",
                        self.session_id,
                        self._settings.session_idle_ttl_seconds,
                    )
                    await self._close_sideband()
                    nursery.cancel_scope.cancel()
        finally:
            self.finished.set()

    async def _until_idle(self) -> None:
        ttl = self._settings.session_idle_ttl_seconds
        if not ttl:
            await trio.sleep_forever()
        # Activity only moves the deadline: one wake-up per TTL at most, not a poll.
        while (deadline := self._last_active + ttl) > trio.current_time():  # noqa: ASYNC110
            await trio.sleep_until(deadline)

    async def end(self) -> None:
        """End the session: close its sideband gracefully, then cancel its scope and tasks.

        The scope is cancelled whatever happens to the caller meanwhile (a client that hangs
        up during `DELETE /session/{id}`), and the wait for its tasks is bounded
        (`END_WAIT_SECONDS`): a tool that shields itself from cancellation cannot hold the
        caller, only delay the session's own end.
        """
        try:
            await self._close_sideband()
        finally:
            self._scope.cancel()
        with trio.move_on_after(END_WAIT_SECONDS) as waited:
            await self.finished.wait()
        if waited.cancelled_caught:
            logger.warning(
                "session %s: its tasks did not finish within %gs of ending it (a tool ignores "
                "cancellation?); it ends when they do",
                self.session_id,
                END_WAIT_SECONDS,
            )

    @property
    def ending(self) -> bool:
        """Whether the session was ended (its tasks may still be finishing)."""
        return self._scope.cancel_called

    def cancel(self) -> None:
        """End the session without waiting or a graceful close (it may not have started)."""
        self._scope.cancel()

    async def _close_sideband(self) -> None:
        sideband = self.sideband
        if sideband is not None:
            sideband.stop()
            with trio.move_on_after(GRACEFUL_CLOSE_SECONDS):
                await sideband.finished.wait()

    async def attach(self, call_id: str) -> Sideband:
        """Attach the sideband to *call_id*, replacing one attached to another call.

        Posting the call it is already attached to changes nothing (no second socket).
        """
        async with self._attach_lock:
            current = self.sideband
            if (
                current is not None
                and current.call_id == call_id
                and current.state not in (SidebandState.CLOSED, SidebandState.FAILED)
            ):
                return current
            if current is not None:
                current.stop()
                await current.finished.wait()
            if self._nursery is None or self.finished.is_set():
                raise UnknownSession()
            self.record.call_id = call_id
            await self._store.save(self.record)
            sideband = Sideband(self, call_id=call_id, settings=self._settings)
            self.sideband = sideband
            await start_fresh(self._nursery, sideband.run)
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
            "sideband": self.sideband.describe() if self.sideband else {"state": "idle"},
        }


class SessionManager:
    """Creates, finds, renews and ends this replica's sessions.

    Resource handling: `run` must be running (in a nursery) before sessions are created;
    cancelling it ends every session and closes every sideband.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        upstream: OpenAIClient,
        store: SessionStore,
        plugins: PluginRegistry,
    ) -> None:
        self._settings = settings
        self._upstream = upstream
        self._store = store
        self.plugins = plugins
        self._tools = ToolDispatcher(
            plugins,
            http=upstream.http,
            timeout_seconds=settings.tool_timeout_seconds,
            output_max_bytes=settings.tool_output_max_bytes,
        )
        self._live: dict[str, LiveSession] = {}
        self._creating = 0  # sessions being created (their secrets being minted)
        self._nursery: trio.Nursery | None = None

    def __len__(self) -> int:
        return len(self._live)

    async def run(
        self, *, task_status: trio.TaskStatus[SessionManager] = trio.TASK_STATUS_IGNORED
    ) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started(self)
            await trio.sleep_forever()

    def get(self, session_id: str) -> LiveSession:
        """The live session *session_id* names; finding it through the API counts as use."""
        session = self._find(session_id)
        if session is None:
            raise UnknownSession()
        session.touch()
        return session

    def _find(self, session_id: str) -> LiveSession | None:
        """The live session *session_id* names; a malformed id is not even looked up, and a
        session being ended is no longer found."""
        session = self._live.get(session_id) if is_session_id(session_id) else None
        return None if session is None or session.ending else session

    async def create(
        self,
        options: SessionOptions,
        *,
        call_id: str | None = None,
        previous_session_id: str | None = None,
    ) -> tuple[LiveSession, ClientSecret]:
        """Mint a client secret for a new session, start it, and attach *call_id* if given.

        Nothing is stored unless minting succeeds.
        """
        if previous_session_id:
            await self.end(previous_session_id)
        settings = self._settings
        if len(self._live) + self._creating >= settings.max_sessions:
            raise SessionLimitReached(
                f"This server already holds its maximum of {settings.max_sessions} sessions; "
                "end one or try again later"
            )
        self._creating += 1  # a slot held while the secret is minted, so bursts cannot overshoot
        try:
            return await self._create(options, call_id=call_id)
        finally:
            self._creating -= 1

    async def _create(
        self, options: SessionOptions, *, call_id: str | None
    ) -> tuple[LiveSession, ClientSecret]:
        settings = self._settings
        record = SessionRecord(
            session_id=new_session_id(),
            model=options.model or settings.realtime_model,
            voice=options.voice,
            enable_transcription=bool(options.enable_transcription),
            base_instructions=(
                options.instructions or settings.base_instructions or DEFAULT_BASE_INSTRUCTIONS
            ),
            profile=empty_profile(self.plugins.profile_model),
            transcript=Transcript(max_items=settings.transcript_max_entries),
        )
        session = LiveSession(
            record,
            settings=settings,
            store=self._store,
            upstream=self._upstream,
            plugins=self.plugins,
            tools=self._tools,
        )
        secret = await self._upstream.create_client_secret(session.client_secret_config())
        record.client_secret, record.expires_at = secret.value, secret.expires_at
        nursery = self._nursery
        if nursery is None:
            raise RuntimeError("SessionManager.run is not running")
        self._live[record.session_id] = session
        try:
            await self._store.add(record)
            await start_fresh(nursery, self._run_session, session)
        except BaseException as exc:
            # Not started, or its starter gave up: nothing of it may stay behind.
            session.cancel()
            self._live.pop(record.session_id, None)
            with trio.CancelScope(shield=True), trio.move_on_after(STORE_CLEANUP_SECONDS):
                await self._store.remove(record.session_id)
            if isinstance(exc, TaskNotStarted):
                raise ShuttingDown() from None
            raise
        logger.info("session %s created (secret %s)", record.session_id, secret.prefix)
        if call_id:
            try:
                await session.attach(call_id)
            except BaseException:
                # The client never learns this session's id: it must not outlive the request.
                with trio.CancelScope(shield=True), trio.move_on_after(ENDING_BOUND_SECONDS):
                    await session.end()
                raise
        return session, secret

    async def renew(self, session_id: str) -> tuple[LiveSession, ClientSecret, str]:
        """Mint a new secret for an existing session; returns it with rehydration instructions."""
        session = self.get(session_id)
        if session.renewing:
            raise RenewInProgress()
        session.renewing = True
        try:
            history = session.record.transcript.history_lines()
            base = self.plugins.instructions(
                session.record.base_instructions, session.record.profile
            )
            instructions = with_history(base, history)
            secret = await self._upstream.create_client_secret(
                session.client_secret_config(instructions)
            )
            session.record.history = history
            session.record.client_secret, session.record.expires_at = (
                secret.value,
                secret.expires_at,
            )
            await self._store.save(session.record)
        finally:
            session.renewing = False
        logger.info("session %s renewed (secret %s)", session_id, secret.prefix)
        return session, secret, instructions

    async def end(self, session_id: str) -> bool:
        """End a session and wait until its sideband is closed; False for an unknown id."""
        session = self._find(session_id)
        if session is None:
            return False
        await session.end()
        return True

    async def end_all(self) -> None:
        """End every session at once (server shutdown), each sideband with a close frame."""
        async with trio.open_nursery() as nursery:
            for session in list(self._live.values()):
                nursery.start_soon(session.end)

    async def _run_session(
        self, session: LiveSession, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        try:
            await session.run(task_status=task_status)
        except Exception:
            logger.exception("session %s failed", session.session_id)
        finally:
            self._live.pop(session.session_id, None)
            with trio.CancelScope(shield=True), trio.move_on_after(STORE_CLEANUP_SECONDS):
                await self._store.remove(session.session_id)
            logger.info("session %s ended", session.session_id)
