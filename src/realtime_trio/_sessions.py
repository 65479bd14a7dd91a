"""This replica's sessions: created, found, renewed and ended, each a task of one nursery.

`SessionManager.run` owns a nursery for the server's lifetime; every session runs in it as
one task (`LiveSession.run`). Shutting the server down cancels the manager, which ends every
session. A session's failure is logged and ends that session only.

With a shared store (`Replica`), a session held by another replica is read from the store, and
taken over here when a request changes it (`Replica.claim`); sessions whose replica died are
taken over too (`adopt`).
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from functools import partial
from typing import Any

import trio

from ._config import Settings
from ._errors import RenewInProgress, SessionLimitReached, ShuttingDown, UnknownSession
from ._fresh_tasks import TaskNotStarted, start_fresh
from ._instructions import DEFAULT_BASE_INSTRUCTIONS, with_history
from ._lease_keeper import Hold
from ._live_session import ENDING_BOUND_SECONDS, LiveSession
from ._log_context import bind_log_fields
from ._metrics import Metrics
from ._plugins import PluginRegistry
from ._pricing import Pricing
from ._profile import empty_profile
from ._replica import Replica, stored_sideband
from ._store import MemorySessionStore, SessionRecord, SessionStore, record_from_json
from ._tools._dispatcher import ToolDispatcher
from ._transcript import Transcript
from ._upstream import ClientSecret, OpenAIClient

logger = logging.getLogger("realtime_trio.sessions")

STORE_CLEANUP_SECONDS = 5.0
GAUGE_SECONDS = 1.0


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


class SessionManager:
    """Creates, finds, renews and ends this replica's sessions.

    Args:
        settings: the server's settings.
        upstream: the client for OpenAI's REST API (minting, extraction); the caller closes it.
        plugins: the loaded plugins (`load_plugins`): their tools and hooks.
        store: where session records live; this process's memory by default.
        replica: this replica's part in a shared store (`STORE_URL`), if there is one; then
            records live there and *store* is unused.
        pricing: what tokens cost (`PRICING_FILE` over the package's table by default).
        replica_name: this replica's name, shown as `sideband.replica`.

    Resource handling: `run` must be running (in a nursery) before sessions are created;
    cancelling it ends every session and closes every sideband.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        upstream: OpenAIClient,
        plugins: PluginRegistry,
        store: SessionStore | None = None,
        replica: Replica | None = None,
        replica_name: str = "",
        pricing: Pricing | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._settings = settings
        self.metrics = metrics
        self._pricing = pricing if pricing is not None else Pricing.load(settings.pricing_file)
        self.replica = replica
        self.replica_name = replica.name if replica is not None else replica_name
        self._claims: dict[str, trio.Lock] = {}
        self._upstream = upstream
        self._store: SessionStore = store if store is not None else MemorySessionStore()
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
            if self.replica is not None:
                await nursery.start(self.replica.run, self)
            if self.metrics is not None:
                nursery.start_soon(self._gauge, self.metrics)
            nursery.start_soon(self._push_tool_changes)
            task_status.started(self)
            await trio.sleep_forever()

    def count_usage(self) -> None:
        """Count the usage every session here noted (the metrics then have it all). This runs
        in the manager's own loop, so a session whose usage cannot be counted is only logged."""
        for session in self._live.values():
            try:
                session.record.usage.count()
            except Exception:
                logger.exception("session %s: its usage could not be counted", session.session_id)

    async def _push_tool_changes(self) -> None:
        """Live calls get the new tool list each time it changes (MCP servers change theirs)."""
        seen = self.plugins.tools_version
        while True:
            seen = await self.plugins.tools_changed(seen)
            for session in list(self._live.values()):
                session.tools_changed()

    async def _gauge(self, metrics: Metrics) -> None:
        """Set the sessions and sidebands gauges, and count the sessions' usage into the
        metrics, once a second (not on every change)."""
        while True:
            sessions = list(self._live.values())
            states = (s.sideband.state.value if s.sideband else "idle" for s in sessions)
            metrics.set_sessions(len(sessions), states)
            self.count_usage()
            metrics.flush()
            await trio.sleep(GAUGE_SECONDS)

    async def find(
        self, session_id: str, *, attach: bool = True, moving_to: str | None = None
    ) -> LiveSession:
        """The session *session_id* names, run here: with a shared store, one held by another
        replica is taken over (its call re-attached here unless not *attach*, or unless the
        request is *moving_to* another call). Finding it through the API counts as use.

        Raises:
            UnknownSession: no such session.
            StoreUnavailable, SessionMoving: a shared store's session could not be taken over.
        """
        session = self._find(session_id)
        if session is None and self.replica is not None and is_session_id(session_id):
            lock = self._claims.setdefault(session_id, trio.Lock())
            try:
                async with lock:
                    session = self._find(session_id) or await self._claim(
                        self.replica, session_id, attach, moving_to
                    )
            finally:
                if not lock.locked() and not lock.statistics().tasks_waiting:
                    self._claims.pop(session_id, None)
        if session is None:
            raise UnknownSession()
        session.touch()
        return session

    async def _claim(
        self, replica: Replica, session_id: str, attach: bool, moving_to: str | None
    ) -> LiveSession | None:
        hold = await replica.claim(session_id)
        if hold is None:
            return None
        if (restored := self._find(session_id)) is not None:
            return restored  # taken over here while the claim waited
        try:
            record = await replica.call(replica.tables.records.load(session_id))
            if record is None:
                await replica.forget(hold)
                return None
            attach = attach and moving_to in (None, record.get("callId"))
            return await self._adopt(hold, record, attach=attach)
        except BaseException:
            if self._find(session_id) is None:
                # Held with nothing run under it: let the lease run out, for a takeover.
                replica.keeper.drop(hold)
            raise

    async def describe(self, session_id: str) -> dict[str, Any]:
        """The session as `GET /session/{id}` shows it, wherever it is held; counts as use."""
        session = self._find(session_id)
        if session is not None or self.replica is None or not is_session_id(session_id):
            if session is None:
                raise UnknownSession()
            session.touch()
            return session.describe()
        loaded = await self.replica.load(session_id)
        if loaded is None:
            raise UnknownSession()
        document, holder = loaded
        view = self._session(self._record(document)).describe()
        view["sideband"] = stored_sideband(document, holder)
        if holder is not None:
            await self.replica.touch(session_id, holder)
        return view

    # -- ReplicaHost: what the shared store's replica asks of this manager -------------------

    def listing(self) -> list[dict[str, Any]]:
        """The sessions run here, oldest first, as `GET /sessions` lists them."""
        live = sorted(
            (s for s in self._live.values() if not s.ending), key=lambda s: s.record.created_at
        )
        return [
            {
                "sessionId": s.session_id,
                "callId": s.record.call_id,
                "createdAt": s.record.created_at,
                "sideband": s.sideband_view(),
            }
            for s in live
        ]

    def local(self, session_id: str) -> LiveSession | None:
        return self._find(session_id)

    def has_room(self) -> bool:
        return len(self._live) + self._creating < self._settings.max_sessions

    async def adopt(self, hold: Hold, record: dict[str, Any]) -> None:
        await self._adopt(hold, record, attach=True)

    async def let_go(self, session_id: str) -> None:
        session = self._live.get(session_id)
        if session is not None:
            await session.end(keep_record=True)

    async def _adopt(self, hold: Hold, document: dict[str, Any], *, attach: bool) -> LiveSession:
        """Run the stored session *document* here under *hold*."""
        record = self._record(document)
        session = self._session(record, hold=hold)
        nursery = self._nursery
        if nursery is None:
            raise RuntimeError("SessionManager.run is not running")
        self._live[record.session_id] = session
        try:
            await start_fresh(nursery, self._run_session, session)
        except BaseException:
            session.cancel()
            self._live.pop(record.session_id, None)
            raise
        if attach and record.call_id:
            await session.attach(record.call_id, catch_up=True)
        return session

    def _record(self, document: dict[str, Any]) -> SessionRecord:
        return record_from_json(
            document, transcript_max_items=self._settings.transcript_max_entries
        )

    def _session(self, record: SessionRecord, *, hold: Hold | None = None) -> LiveSession:
        return LiveSession(
            record,
            settings=self._settings,
            store=self._store,
            upstream=self._upstream,
            plugins=self.plugins,
            tools=self._tools,
            replica_name=self.replica_name,
            replica=self.replica,
            hold=hold,
            pricing=self._pricing,
            metrics=self.metrics,
        )

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
            await self.end(previous_session_id, keep_call=call_id)
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
        # With a shared store, held before anything is spent: a store away answers 503 first.
        hold = await self.replica.take_new(record.session_id) if self.replica else None
        session = self._session(record, hold=hold)
        try:
            secret = await self._upstream.create_client_secret(session.client_secret_config())
            record.client_secret, record.expires_at = secret.value, secret.expires_at
            nursery = self._nursery
            if nursery is None:
                raise RuntimeError("SessionManager.run is not running")
            self._live[record.session_id] = session
            if self.replica is not None and hold is not None:
                await self.replica.create_record(hold, record, session.sideband_view())
            else:
                await self._store.add(record)
            await start_fresh(nursery, self._run_session, session)
        except BaseException as exc:
            # Not started, or its starter gave up: nothing of it may stay behind.
            session.cancel()
            self._live.pop(record.session_id, None)
            with trio.CancelScope(shield=True), trio.move_on_after(STORE_CLEANUP_SECONDS):
                await self._forget(session)
            if isinstance(exc, TaskNotStarted):
                raise ShuttingDown() from None
            raise
        logger.debug("session %s created (secret %s)", record.session_id, secret.prefix)
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
        session = await self.find(session_id)
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
            await session.record_changed()
        finally:
            session.renewing = False
        logger.debug("session %s renewed (secret %s)", session_id, secret.prefix)
        return session, secret, instructions

    async def end(self, session_id: str, *, keep_call: str | None = None) -> bool:
        """End a session and wait until its sideband is closed; False for an unknown id.

        Its call is hung up too (`HANGUP_ON_SESSION_END`), unless it is *keep_call* (the call a
        new session takes over).
        """
        try:
            session = await self.find(session_id, attach=False)
        except UnknownSession:
            return False
        hang_up = self._settings.hangup_on_session_end and session.record.call_id != keep_call
        await session.end(hang_up=hang_up)
        return True

    async def end_all(self) -> None:
        """End every session at once (server shutdown), each sideband with a close frame.

        Their calls are not hung up: a replica stopping is not the user leaving. With a shared
        store their records are written and their leases released, so the other replicas take
        them over at once.
        """
        sessions = list(self._live.values())
        keep = self.replica is not None
        async with trio.open_nursery() as nursery:
            for session in sessions:
                nursery.start_soon(partial(session.end, keep_record=keep))
        if self.replica is not None:
            await self.replica.hand_over_all(sessions)
            await self.replica.release_all()

    async def _run_session(
        self, session: LiveSession, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        bind_log_fields(session_id=session.session_id)  # this task's own (fresh) context
        try:
            await session.run(task_status=task_status)
        except Exception:
            logger.exception("session %s failed", session.session_id)
        finally:
            if self._live.get(session.session_id) is session:
                del self._live[session.session_id]
            # In a shared store a session outlives its replica's tasks being cancelled: only a
            # session that ended for good goes.
            if self.replica is None or session.concluded:
                with trio.CancelScope(shield=True), trio.move_on_after(STORE_CLEANUP_SECONDS):
                    await self._forget(session)
            if session.concluded:
                record = session.record
                self.plugins.session_ended(
                    session.session_id,
                    record.transcript.entries(),
                    dict(record.profile),
                    record.usage.as_json(),
                )
            logger.debug("session %s ended", session.session_id)

    async def _forget(self, session: LiveSession) -> None:
        """The session ended for good: its record goes (and, shared, its lease)."""
        if self.replica is None:
            await self._store.remove(session.session_id)
        elif session.hold is not None and self.replica.holds(session.session_id) is session.hold:
            await self.replica.forget(session.hold)
