"""This replica's sessions: created, found, renewed and ended, each a task of one nursery.

`SessionManager.run` owns a nursery for the server's lifetime; every session runs in it as
one task (`LiveSession.run`). Shutting the server down cancels the manager, which ends every
session. A session's failure is logged and ends that session only.
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass

import trio

from ._config import Settings
from ._errors import RenewInProgress, SessionLimitReached, ShuttingDown, UnknownSession
from ._fresh_tasks import TaskNotStarted, start_fresh
from ._instructions import DEFAULT_BASE_INSTRUCTIONS, with_history
from ._live_session import ENDING_BOUND_SECONDS, LiveSession
from ._plugins import PluginRegistry
from ._profile import empty_profile
from ._store import MemorySessionStore, SessionRecord, SessionStore
from ._tools._dispatcher import ToolDispatcher
from ._transcript import Transcript
from ._upstream import ClientSecret, OpenAIClient

logger = logging.getLogger("realtime_trio.sessions")

STORE_CLEANUP_SECONDS = 5.0


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
    ) -> None:
        self._settings = settings
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
        logger.debug("session %s renewed (secret %s)", session_id, secret.prefix)
        return session, secret, instructions

    async def end(self, session_id: str, *, keep_call: str | None = None) -> bool:
        """End a session and wait until its sideband is closed; False for an unknown id.

        Its call is hung up too (`HANGUP_ON_SESSION_END`), unless it is *keep_call* (the call a
        new session takes over).
        """
        session = self._find(session_id)
        if session is None:
            return False
        hang_up = self._settings.hangup_on_session_end and session.record.call_id != keep_call
        await session.end(hang_up=hang_up)
        return True

    async def end_all(self) -> None:
        """End every session at once (server shutdown), each sideband with a close frame.

        Their calls are not hung up: a replica stopping is not the user leaving.
        """
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
            logger.debug("session %s ended", session.session_id)
