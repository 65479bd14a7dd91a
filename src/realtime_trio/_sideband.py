"""One sideband: the server's own WebSocket on a live call, kept attached until told to stop.

`Sideband.run` connects, sends the session's `session.update` (on every connect and reconnect,
so a reconnect never loses tools, instructions or what is known of the user), then hands every
event its host wants to its host. An unexpected drop reconnects with exponential backoff and
jitter; a normal close from upstream (the call ended), a refused handshake or the session's
60-minute expiry (`session_expired`, then 1001) ends it. A connection that closes abnormally
within `SIDEBAND_STABLE_SECONDS` of opening counts as a failed attempt, so a socket accepted and
dropped again and again cannot make reconnects endless. Stopping it (cancelling its task)
closes the socket with a normal close frame.

Every client event it sends carries an `event_id`; an `error` naming one is logged with that
event's type and becomes `lastError` (a refused `session.update` is sent again, once).

Receiving is the hot path (hundreds of thousands of events a second on one core): each batch a
read brought is handled without awaiting in between, and an event is parsed only when its type,
peeked from the frame's first bytes, is one the host wants.
"""

from __future__ import annotations

import functools
import itertools
import logging
import random
import secrets
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Any, Protocol

import orjson
import trio

from ._config import Settings
from ._metrics import Metrics
from ._transport import (
    GOING_AWAY,
    NORMAL_CLOSURE,
    SidebandClosed,
    SidebandRejected,
    SidebandSocket,
    SidebandSocketError,
    open_sideband_socket,
)

logger = logging.getLogger("realtime_trio.sideband")

# Server event types of the GA API, plus the beta-era names still seen; anything else is
# counted and skipped.
_KNOWN_EVENT_TYPES = """
    error session.created session.updated conversation.created
    conversation.item.added conversation.item.created conversation.item.done
    conversation.item.retrieved conversation.item.deleted conversation.item.truncated
    conversation.item.input_audio_transcription.delta
    conversation.item.input_audio_transcription.completed
    conversation.item.input_audio_transcription.failed
    conversation.item.input_audio_transcription.segment
    input_audio_buffer.speech_started input_audio_buffer.speech_stopped
    input_audio_buffer.committed input_audio_buffer.cleared input_audio_buffer.timeout_triggered
    input_audio_buffer.dtmf_event_received
    output_audio_buffer.started output_audio_buffer.stopped output_audio_buffer.cleared
    response.created response.done response.output_item.added response.output_item.done
    response.content_part.added response.content_part.done
    response.output_audio_transcript.delta response.output_audio_transcript.done
    response.output_text.delta response.output_text.done
    response.output_audio.delta response.output_audio.done
    response.function_call_arguments.delta response.function_call_arguments.done
    response.mcp_call_arguments.delta response.mcp_call_arguments.done
    response.mcp_call.in_progress response.mcp_call.completed response.mcp_call.failed
    mcp_list_tools.in_progress mcp_list_tools.completed mcp_list_tools.failed
    rate_limits.updated
    response.audio_transcript.delta response.audio_transcript.done
    response.text.delta response.text.done response.audio.delta response.audio.done
    transcription_session.updated
"""
KNOWN_EVENT_TYPES = frozenset(_KNOWN_EVENT_TYPES.split())
UPSTREAM_ERROR = "error"

# How compact JSON (the real API's) and `json.dumps` start an event: its type can be read off
# the frame without parsing it. Anything else is parsed whole.
_COMPACT_PREFIX, _SPACED_PREFIX = b'{"type":"', b'{"type": "'
# What to do with an event, by the type peeked from its frame (absent: parse it whole and see).
_COUNT_ONLY, _HAND_OVER = 0, 1

_AUTH_FAILURES = {401, 403}
_CALL_NOT_FOUND = 404
SESSION_EXPIRED = "session_expired"
# Client events remembered by id, so that an `error` naming one can say what was refused.
SENT_EVENTS_REMEMBERED = 256


@functools.cache
def _routes(wanted: frozenset[str]) -> dict[bytes, int]:
    """What to do with each known type, as peeked from a frame; one table shared by every
    sideband whose host wants the same types (thousands of live sessions)."""
    return {
        kind.encode(): _HAND_OVER if kind in wanted else _COUNT_ONLY
        for kind in KNOWN_EVENT_TYPES
        if kind != UPSTREAM_ERROR
    }


class SidebandState(StrEnum):
    IDLE = "idle"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"
    FAILED = "failed"
    EXPIRED = "expired"  # the session hit the API's maximum duration: never reconnected


# The states of a sideband that has ended for good.
ENDED = frozenset({SidebandState.CLOSED, SidebandState.FAILED, SidebandState.EXPIRED})


class SidebandHost(Protocol):
    """What a sideband needs from the session that owns it."""

    session_id: str
    # The server event types `on_event` acts on; the others are counted, never parsed.
    wanted_event_types: frozenset[str]

    def sideband_token(self) -> str:
        """The bearer credential for the handshake."""
        ...

    def session_update(self) -> dict[str, Any]:
        """The `session.update` event to send after every connect."""
        ...

    def resync_events(self) -> list[dict[str, Any]]:
        """Client events to send after a reconnect, to catch up on what the drop hid."""
        ...

    def touch(self) -> None:
        """Note that the call is alive (once per batch of events received)."""
        ...

    def on_event(self, event: dict[str, Any]) -> None:
        """Take one server event; must return at once (spawn anything slow)."""
        ...

    def sideband_changed(self) -> None:
        """The sideband's state changed (what `describe` says)."""
        ...


class Sideband:
    """The sideband of one session on one call.

    Resource handling: `run` owns the socket; cancel its task (or call `stop`) to close it
    with a normal close frame. `finished` is set once it no longer holds a socket.
    """

    def __init__(
        self,
        host: SidebandHost,
        *,
        call_id: str,
        settings: Settings,
        catch_up: bool = False,
        metrics: Metrics | None = None,
    ) -> None:
        self.call_id = call_id
        self._metrics = metrics
        self._state = SidebandState.IDLE
        # Taking over a call another replica held: catch up from the first connect on.
        self._catch_up = catch_up
        self.last_error: str | None = None
        self.events_received = 0
        self.events_skipped = 0
        self.reconnects = 0
        self.settled = trio.Event()  # first connection made, or gave up
        self.finished = trio.Event()
        self._host = host
        self._settings = settings
        self._url = settings.sideband_url(call_id)
        self._socket: SidebandSocket | None = None
        self._connected = trio.Event()
        self._dropped = trio.Event()
        self._cancel_scope = trio.CancelScope()
        self._receive_scope: trio.CancelScope | None = None
        self._stopping = False
        # Known types, as peeked from a frame, to what is done with them: the host's are parsed
        # and handed over; upstream errors (which the sideband notes itself) take the general
        # path; every other known type is only counted.
        self._wanted = host.wanted_event_types
        self._routes = _routes(self._wanted)
        self._event_prefix = f"rt_{secrets.token_hex(4)}_"  # unique across reconnects too
        self._event_numbers = itertools.count(1)
        self._sent_types: dict[str, str] = {}  # event_id -> type, the latest only
        self._expiry: str | None = None  # upstream's own words when the session expired
        self._resend_update = False  # a refused session.update, to send again on this socket
        self._update_resent = False

    @property
    def state(self) -> SidebandState:
        return self._state

    @state.setter
    def state(self, state: SidebandState) -> None:
        if state is not self._state:
            self._state = state
            self._host.sideband_changed()

    def describe(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"state": self.state.value}
        if self.last_error:
            answer["lastError"] = self.last_error
        return answer

    async def wait_settled(self, seconds: float) -> None:
        """Wait up to *seconds* for the first connection (or for giving up)."""
        with trio.move_on_after(seconds):
            await self.settled.wait()

    def stop(self) -> None:
        """Ask the sideband to close its socket and end; `finished` tells when it has.

        While connected this stops only the receive loop, and leaving the socket's block then
        completes the close handshake; otherwise (connecting, backing off) it cancels.
        """
        self._stopping = True
        if self._receive_scope is not None:
            self._receive_scope.cancel()
        else:
            self._cancel_scope.cancel()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep the sideband attached until stopped, closed by upstream, or out of retries."""
        task_status.started()
        try:
            with self._cancel_scope:
                await self._supervise()
        finally:
            self._socket = None
            if self.state not in (SidebandState.FAILED, SidebandState.EXPIRED):
                self.state = SidebandState.CLOSED
            self._connected.set()  # wake senders: nothing more will be sent
            self.settled.set()
            self.finished.set()

    async def send_if_connected(self, event: dict[str, Any]) -> bool:
        """Send a client event now if connected; False (nothing sent) otherwise."""
        socket = self._socket
        if socket is None:
            return False
        try:
            await socket.send(*self._stamped((event,)))
        except SidebandClosed:
            return False
        return True

    async def send(self, *events: dict[str, Any], wait_seconds: float = 10.0) -> bool:
        """Send client events in order (one write where the transport can), waiting (bounded)
        through a reconnect; False if it could not."""
        stamped = self._stamped(events)
        with trio.move_on_after(wait_seconds):
            while self.state not in ENDED:
                socket, dropped = self._socket, self._dropped
                if socket is not None:
                    try:
                        await socket.send(*stamped)
                        return True
                    except SidebandClosed:
                        await dropped.wait()  # the receive loop notices, then reconnects
                        continue
                # Set while connected, replaced on a drop, set for good when the sideband ends.
                await self._connected.wait()
        return False

    async def _supervise(self) -> None:
        failures = 0
        ever_connected = False
        while not self._stopping:
            self.state = SidebandState.RECONNECTING if ever_connected else SidebandState.CONNECTING
            connected, lived, error = await self._connect_and_serve(
                resync=ever_connected or self._catch_up
            )
            if error is None:
                return  # stopped on request
            ever_connected = ever_connected or connected
            if connected and lived >= self._settings.sideband_stable_seconds:
                failures = 0  # it was up for a while: this drop starts a new outage
            if isinstance(error, SidebandClosed) and (expiry := self._expired(error)):
                self.state = SidebandState.EXPIRED
                self.last_error = expiry
                logger.info(
                    "sideband %s: call %s expired upstream: %s",
                    self._host.session_id,
                    self.call_id,
                    expiry,
                )
                return
            if isinstance(error, SidebandClosed) and error.code == NORMAL_CLOSURE:
                logger.info(
                    "sideband %s: call %s closed by upstream", self._host.session_id, self.call_id
                )
                return
            if isinstance(error, SidebandRejected) and error.status_code in _AUTH_FAILURES:
                self._fail(f"authentication failed ({error.status_code}): {error.message}")
                return
            if isinstance(error, SidebandRejected) and error.status_code == _CALL_NOT_FOUND:
                if ever_connected:  # the call is over
                    self.last_error = error.message
                    return
                self._fail(f"call not found ({error.status_code}): {error.message}")
                return
            failures += 1
            self.last_error = str(error)
            if failures > self._settings.sideband_reconnect_attempts:
                self._fail(f"gave up after {failures - 1} reconnect attempts: {error}")
                return
            self.state = SidebandState.RECONNECTING if ever_connected else SidebandState.CONNECTING
            delay = self._backoff(failures)
            logger.warning(
                "sideband %s: %s; reconnecting in %.2fs (attempt %d)",
                self._host.session_id,
                error,
                delay,
                failures,
            )
            self.reconnects += 1
            if self._metrics is not None:
                self._metrics.sideband_reconnects.inc()
            await trio.sleep(delay)

    async def _connect_and_serve(
        self, *, resync: bool
    ) -> tuple[bool, float, SidebandSocketError | None]:
        """One connection: whether it got connected, how long it was up, and why it ended
        (None: stopped).

        *resync*: a reconnect, so the host's catch-up events follow the `session.update`.
        """
        settings = self._settings
        connected = False
        opened_at = trio.current_time()
        try:
            async with open_sideband_socket(
                self._url,
                token=self._host.sideband_token(),
                max_message_size=settings.sideband_max_message_bytes,
                connect_timeout=settings.sideband_connect_timeout_seconds,
                send_timeout=settings.sideband_send_timeout_seconds,
                ping_interval=settings.sideband_ping_interval_seconds,
                ping_timeout=settings.sideband_ping_timeout_seconds,
                transport=settings.sideband_transport,
            ) as socket:
                host = self._host
                self._resend_update = self._update_resent = False
                first = [host.session_update(), *(host.resync_events() if resync else ())]
                await socket.send(*self._stamped(first))
                opened_at = trio.current_time()
                connected = True
                self._socket, self._dropped = socket, trio.Event()
                self.state = SidebandState.CONNECTED
                self._connected.set()
                self.settled.set()
                logger.debug(
                    "sideband %s: attached to call %s", self._host.session_id, self.call_id
                )
                with trio.CancelScope() as self._receive_scope:
                    if self._stopping:
                        self._receive_scope.cancel()
                    while True:
                        self._handle_frames(await socket.receive_many())
                        host.touch()
                        if self._resend_update:
                            self._resend_update = False
                            await socket.send(*self._stamped((host.session_update(),)))
            return connected, trio.current_time() - opened_at, None  # closed with a close frame
        except SidebandSocketError as exc:
            return connected, trio.current_time() - opened_at, exc
        finally:
            self._receive_scope = None
            self._socket = None
            self._dropped.set()
            if self._connected.is_set():
                self._connected = trio.Event()

    def _handle_frames(self, frames: Sequence[bytes]) -> None:
        """Take a batch of frames: count the unwanted, parse and hand over the wanted.

        Kept flat and on local names: it runs once per server event.
        """
        routes = self._routes
        debug = self._settings.sideband_debug_events
        on_event = self._host.on_event
        loads = orjson.loads
        counted = 0
        for frame in frames:
            # 9 and 10: the lengths of the two prefixes.
            if frame.startswith(_COMPACT_PREFIX):
                kind = frame[9 : frame.find(b'"', 9)]
            elif frame.startswith(_SPACED_PREFIX):
                kind = frame[10 : frame.find(b'"', 10)]
            else:
                kind = b""
            route = routes.get(kind)
            if route == _COUNT_ONLY:
                counted += 1
                if debug:
                    self._log_event(kind.decode())
            elif route == _HAND_OVER:
                try:
                    event = loads(frame)
                except orjson.JSONDecodeError:
                    self._skip()
                    continue
                counted += 1
                if debug:
                    self._log_event(kind.decode())
                try:
                    on_event(event)
                except Exception:
                    self._failed_to_handle(kind.decode())
            else:
                self._handle_frame(frame)
        self.events_received += counted
        if self._metrics is not None:  # once a batch, not once an event
            self._metrics.sideband_events.inc(len(frames))

    def _handle_frame(self, frame: bytes) -> None:
        """The general path: parse the frame whole, then count, note or hand it over."""
        event: Any
        try:
            event = orjson.loads(frame)
        except orjson.JSONDecodeError:
            event = None
        kind = event.get("type") if isinstance(event, dict) else None
        if not isinstance(kind, str) or kind not in KNOWN_EVENT_TYPES:
            self._skip()
            return
        self.events_received += 1
        if self._settings.sideband_debug_events:
            self._log_event(kind)
        if kind == UPSTREAM_ERROR:
            self._note_upstream_error(event)
        if kind not in self._wanted:
            return
        try:
            self._host.on_event(event)
        except Exception:
            self._failed_to_handle(kind)

    def _skip(self) -> None:
        self.events_skipped += 1
        logger.debug(
            "sideband %s: skipped a frame that is not a known event", self._host.session_id
        )

    def _failed_to_handle(self, kind: str) -> None:
        # A bug in handling one event must not end the call's sideband.
        self.events_skipped += 1
        logger.exception("sideband %s: failed to handle %s", self._host.session_id, kind)

    def _log_event(self, kind: str) -> None:
        logger.info("sideband %s event %s", self._host.session_id, kind)

    def _stamped(self, events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """*events* each with an `event_id` (theirs, else a new one), remembered with its type."""
        stamped = []
        for event in events:
            event_id = event.get("event_id")
            if not isinstance(event_id, str):
                event_id = f"{self._event_prefix}{next(self._event_numbers)}"
                event = {**event, "event_id": event_id}
            self._remember(event_id, str(event.get("type")))
            stamped.append(event)
        return stamped

    def _remember(self, event_id: str, kind: str) -> None:
        sent = self._sent_types
        sent[event_id] = kind
        if len(sent) > SENT_EVENTS_REMEMBERED:
            del sent[next(iter(sent))]

    def sent_type(self, event_id: object) -> str | None:
        """The type of the client event sent with *event_id*, if it was one of the latest."""
        return self._sent_types.get(event_id) if isinstance(event_id, str) else None

    def _note_upstream_error(self, event: dict[str, Any]) -> None:
        error = event.get("error")
        if not isinstance(error, dict):
            error = {}
        code, message = error.get("code"), error.get("message")
        if code == SESSION_EXPIRED:
            self._expiry = str(message or "the session hit its maximum duration")
        what = f"{code or error.get('type') or 'error'}: {message}"
        refused = self.sent_type(error.get("event_id"))
        if refused is None:
            self.last_error = what
            logger.warning("sideband %s: upstream error %s", self._host.session_id, what)
            return
        self.last_error = f"{refused} refused: {what}"
        logger.warning(
            "sideband %s: upstream refused %s (%s): %s",
            self._host.session_id,
            refused,
            error.get("event_id"),
            what,
        )
        if refused == "session.update" and not self._update_resent:
            self._update_resent = self._resend_update = True

    def _expired(self, closed: SidebandClosed) -> str | None:
        """Upstream's words if this close ends an expired session (`session_expired`, then
        1001), else None."""
        if self._expiry is not None:
            return self._expiry
        if closed.code == GOING_AWAY and "maximum duration" in (closed.reason or ""):
            return closed.reason
        return None

    def _fail(self, reason: str) -> None:
        self.state = SidebandState.FAILED
        self.last_error = reason
        logger.warning("sideband %s: failed: %s", self._host.session_id, reason)

    def _backoff(self, failures: int) -> float:
        settings = self._settings
        ceiling = min(
            settings.sideband_reconnect_max_backoff_seconds,
            settings.sideband_reconnect_backoff_seconds * 2 ** (failures - 1),
        )
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not security
