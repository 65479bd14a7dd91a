"""One WebRTC call as the simulator holds it: session, conversation, sockets, what clients sent.

Trio runs one task at a time, so a change to a call and the events announcing it happen with no
checkpoint in between: every event is queued at once, in order, on the bounded outbox of each
open socket, and that socket's own sender task writes it to the wire. Waiting helpers wake on a
`trio.Event` replaced at every change, so tests wait for what they need instead of polling.

Benchmarks need to know when a frame actually left, not when it was queued: a `Stamped` frame
has the sender report the `time.monotonic()` just after writing it, and a frame a client sends
is recorded with the `time.monotonic()` at which it came off the socket (`arrived_at`).

A call lasts at most `max_seconds` (the API's 60 minutes by default): it then expires as the API
ends a session (`expire`: an `error` with code `session_expired`, then every socket closed with
1001 and the same words). Tests arm what the API does on its own: sockets that close as soon as
they open (`arm_socket_faults`), client events refused on purpose (`arm_refusal`), and what the
model does in the responses nobody scripted (`queue_reply`, `queue_tool_call`).
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, final

import trio

from .conversation import Conversation
from .errors import OpenAIError
from .events import error_event, server_event
from .frames import EncodedFrames, RawFrames
from .sessions import new_id
from .turns import (
    ARGUMENTS_DONE,
    DONE,
    SimResponse,
    answer_user,
    arguments_text,
    start_response,
    user_turn,
)

OUTBOX_SIZE = 1024
NORMAL_CLOSURE = 1000
GOING_AWAY = 1001
INTERNAL_ERROR = 1011
DEFAULT_MAX_CALL_SECONDS = 3600.0  # the API's maximum session duration: 60 minutes
APP_SOCKET_ID = 0  # what `ReceivedEvent.socket_id` says of an event the app sent (`app_events`)

logger = logging.getLogger(__name__)


class CallEnded(Exception):
    """The call was hung up or ended; nothing more happens on it."""

    def __init__(self, call_id: str) -> None:
        super().__init__(call_id)
        self.call_id = call_id


@dataclass(frozen=True)
class ReceivedEvent:
    """A frame a client sent on one of the call's sockets.

    `event` is the parsed JSON object (`{}` if the frame was not one); `valid` is whether the
    simulator accepted it (it matched the SDK's types and was not refused with an `error`).
    `socket_id` is `APP_SOCKET_ID` (0) for an event the app sent on its data channel.
    `received_at` is the call's clock (wall time) when it was recorded; `arrived_at` the
    `time.monotonic()` at which the frame came off the socket, before it was even parsed.
    """

    socket_id: int
    event: dict[str, Any]
    valid: bool
    received_at: float
    raw: str
    error: dict[str, Any] | None = None
    arrived_at: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "socketId": self.socket_id,
            "event": self.event,
            "valid": self.valid,
            "receivedAt": self.received_at,
            "error": self.error,
        }


@dataclass(frozen=True)
class Close:
    """Queued after a socket's last event: close with `code` (and `reason`, the close frame's
    words), or drop the connection (`abrupt`)."""

    code: int
    abrupt: bool = False
    reason: str = ""


@dataclass
class SocketFault:
    """The next `times` sockets opened on a call are accepted, then closed at once as `close`
    says, before any event (`SimCall.arm_socket_faults`)."""

    close: Close
    times: int


@dataclass
class ArmedRefusal:
    """The next `times` client events of one type from a sideband socket are answered with
    `error` and not applied (`SimCall.arm_refusal`)."""

    error: OpenAIError
    times: int


@dataclass(frozen=True)
class Stamped:
    """A frame whose write time matters: the sender calls `on_sent(time.monotonic())` just
    before the write to the transport that carries it."""

    text: str
    on_sent: Callable[[float], None]


Outgoing = str | Stamped | RawFrames | Close


@final
class SimSocket:
    """One sideband WebSocket attached to a call.

    `close_code` is the code of the close as observed: the client's close frame code if the
    client closed, the code the simulator closed with, or 1006 for a connection that ended
    without a close frame (a drop, either way).
    """

    def __init__(
        self, socket_id: int, *, auth: str, outbox: trio.MemorySendChannel[Outgoing], at: float
    ) -> None:
        self.id = socket_id
        self.auth = auth
        self.opened_at = at
        self.closed_at: float | None = None
        self.open = True
        self.close_code: int | None = None
        self.closing = False
        self.faulted = False
        self.cancel_scope = trio.CancelScope()
        self._outbox = outbox

    def queue(self, item: Outgoing) -> bool:
        """Queue a frame (or the close) for the sender task; False if the socket is closing.

        A client that lets `OUTBOX_SIZE` events pile up is cut off: its handler is cancelled and
        the connection dropped.
        """
        if self.closing or not self.open:
            return False
        try:
            self._outbox.send_nowait(item)
        except trio.WouldBlock:
            self.closing = True
            self.cancel_scope.cancel()
            return False
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False  # the sender is gone; `socket_closed` is about to be recorded
        if isinstance(item, Close):
            self.closing = True
        return True

    def mark_closed(self, code: int | None, at: float) -> bool:
        if not self.open:
            return False
        self.open = False
        self.closing = True
        self.close_code = code
        self.closed_at = at
        self._outbox.close()
        return True

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "open": self.open,
            "closeCode": self.close_code,
            "auth": self.auth,
            "openedAt": self.opened_at,
            "closedAt": self.closed_at,
            "faulted": self.faulted,
        }


@dataclass(frozen=True)
class FunctionCall:
    """A function call for the simulated model to make (a blast's marker, a trickle's probe)."""

    name: str
    arguments: dict[str, Any] | str


@dataclass
class ToolCallResult:
    """What became of a function call the model made (`SimCall.tool_call`), and when.

    Times are `time.monotonic()`: `sent_at` is the response's (`SimResponse.sent_at`: when its
    `response.function_call_arguments.done` and `response.done` were first written to a
    socket, stamped just before the write); `output_received_at` and
    `response_create_received_at` are when the client's `function_call_output` item and the
    `response.create` after it came off the socket.
    """

    call_id: str
    response_id: str
    item_id: str
    output: str | None = None
    response_created: bool = False
    sent_at: dict[str, float] = field(default_factory=dict, repr=False)
    output_received_at: float | None = None
    response_create_received_at: float | None = None
    response: SimResponse | None = field(default=None, repr=False)
    started_at_event: int = field(default=0, repr=False)  # where to look in `client_events`

    def as_json(self) -> dict[str, Any]:
        return {
            "callId": self.call_id,
            "responseId": self.response_id,
            "itemId": self.item_id,
            "output": self.output,
            "responseCreated": self.response_created,
            "timings": {
                "argumentsDoneSentAt": self.sent_at.get(ARGUMENTS_DONE),
                "responseDoneSentAt": self.sent_at.get(DONE),
                "outputReceivedAt": self.output_received_at,
                "responseCreateReceivedAt": self.response_create_received_at,
            },
        }


@dataclass(frozen=True)
class QueuedReply:
    """What the model does in the next response no control scripted: say `text`, or make the
    function `call`; `delta_delay` seconds between deltas."""

    text: str | None = None
    call: FunctionCall | None = None
    delta_delay: float = 0.0

    def as_json(self) -> dict[str, Any]:
        if self.call is not None:
            what: dict[str, Any] = {
                "toolCall": {"name": self.call.name, "arguments": self.call.arguments}
            }
        else:
            what = {"text": self.text}
        return {**what, "deltaDelayMs": round(self.delta_delay * 1000)}


@dataclass(frozen=True)
class UserTurn:
    """What a user turn did: the user item it committed, and the response voice activity (or
    `respond`) started after it, if any."""

    item_id: str
    response: SimResponse | None


def expiry_message(max_seconds: float) -> str:
    """The `session_expired` error's words (and the close reason) for a call of *max_seconds*."""
    minutes = f"{max_seconds / 60:.6f}".rstrip("0").rstrip(".")
    return f"Your session hit the maximum duration of {minutes} minutes."


@final
class SimCall:
    """A call: its effective `session`, its conversation (`items`) and its sockets.

    Tasks of the call (late transcriptions, responses being played) run in the call's own
    nursery (`run`), which ending the call cancels. The call expires *max_seconds* after `run`
    started (see `expire`). `end_reason` says how it ended: `"ended"` (`end`), `"expired"` or
    `"failed"` (a simulator bug).
    """

    def __init__(
        self,
        call_id: str,
        session: dict[str, Any],
        *,
        secret: str | None = None,
        clock: Callable[[], float] = time.time,
        max_seconds: float = DEFAULT_MAX_CALL_SECONDS,
    ) -> None:
        self.call_id = call_id
        self.session = session
        self.secret = secret
        self.max_seconds = max_seconds
        self.created_at = clock()
        self.conversation_id = new_id("conv")
        self.ended = False
        self.end_reason: str | None = None
        self.conversation = Conversation()
        self.client_events: list[ReceivedEvent] = []
        self.app_events: list[ReceivedEvent] = []
        self.sockets: dict[int, SimSocket] = {}
        self.socket_faults: deque[SocketFault] = deque()
        self.refusals: dict[str, ArmedRefusal] = {}
        self.replies: deque[QueuedReply] = deque()
        self.responses: dict[str, SimResponse] = {}
        self.last_response_id: str | None = None
        self.audio_produced = False
        self.input_audio_bytes = 0
        self.audio_ms = 0
        self.transcribing: set[str] = set()
        self._clock = clock
        self._change = trio.Event()
        self._end = trio.Event()
        self._nursery: trio.Nursery | None = None

    # -- lifetime -------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the call's tasks until it ends (or expires, `max_seconds` from now); then cancel
        whatever is still playing.

        A task that fails (a simulator bug) ends this call only: its sockets close with 1011.
        """
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                with trio.move_on_after(self.max_seconds):
                    await self._end.wait()
                self.expire()  # nothing if it ended first
                nursery.cancel_scope.cancel()
        except Exception:
            logger.exception("call %s: a task of the call failed; ending it", self.call_id)
            self._finish(Close(INTERNAL_ERROR), reason="failed")
        finally:
            self._nursery = None

    def check_open(self) -> None:
        """Raise `CallEnded` if the call is over."""
        if self.ended or self._nursery is None:
            raise CallEnded(self.call_id)

    def start_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run `fn(*args)` in the call's nursery (cancelled when the call ends)."""
        if self.ended or self._nursery is None:
            raise CallEnded(self.call_id)
        self._nursery.start_soon(fn, *args)

    def end(self) -> int:
        """End the call (a hang-up): each open socket closes (1000) after its queued events;
        later connections are refused (404). Returns how many sockets were closed."""
        return self._finish(Close(NORMAL_CLOSURE), reason="ended")

    def expire(self) -> int:
        """End the call as the API ends a session at its maximum duration: an `error` event
        (`invalid_request_error`, code `session_expired`, "Your session hit the maximum
        duration of N minutes.") to every open socket, then each closes with 1001 and those
        words as the close reason; later connections are refused (404). Returns how many
        sockets were closed (0 if the call had ended already)."""
        if self.ended:
            return 0
        message = expiry_message(self.max_seconds)
        # The code and words are the API's as reported (section 10/14 of the reference); the
        # null `param` is the simulator's choice.  # UNVERIFIED param
        self.broadcast(error_event(message, type="invalid_request_error", code="session_expired"))
        return self._finish(Close(GOING_AWAY, reason=message), reason="expired")

    def _finish(self, close: Close, *, reason: str) -> int:
        if self.ended:
            return 0
        self.ended = True
        self.end_reason = reason
        closed = self._close_sockets(close)
        self._end.set()
        self._changed()
        return closed

    def drop(self) -> int:
        """Drop every open socket abruptly, after its queued events; the call stays up.

        Under Hypercorn the TCP connection is closed with no close frame, as a network drop
        looks (the client sees 1006; `SimSocket.close_code` records 1006); elsewhere the
        socket closes with 1011. Returns how many sockets were dropped.
        """
        return self._close_sockets(Close(INTERNAL_ERROR, abrupt=True))

    def _close_sockets(self, close: Close) -> int:
        return sum(socket.queue(close) for socket in self.open_sockets)

    # -- sockets ------------------------------------------------------------------------------

    @property
    def open_sockets(self) -> list[SimSocket]:
        """Sockets that still receive events (open and not being closed)."""
        return [s for s in self.sockets.values() if s.open and not s.closing]

    def targets(self, socket_id: int | None) -> list[SimSocket]:
        """The open sockets, or only socket *socket_id* if it is one of them."""
        return [s for s in self.open_sockets if socket_id is None or s.id == socket_id]

    def attach_socket(self, *, auth: str) -> tuple[SimSocket, trio.MemoryReceiveChannel[Outgoing]]:
        """A new socket on the call, `session.created` already queued; and its outbox to drain.

        If a socket fault is armed, the socket's `Close` is queued instead, with no event
        before it (`SimSocket.faulted`).

        Raises:
            CallEnded: the call is over.
        """
        self.check_open()
        send, receive = trio.open_memory_channel[Outgoing](OUTBOX_SIZE)
        socket = SimSocket(len(self.sockets) + 1, auth=auth, outbox=send, at=self._clock())
        self.sockets[socket.id] = socket
        fault = self._take_socket_fault()
        if fault is None:
            socket.queue(json.dumps(server_event("session.created", session=self.session)))
        else:
            socket.faulted = True
            socket.queue(fault)
        self._changed()
        return socket, receive

    def arm_socket_faults(
        self, close_code: int, *, reason: str = "", abrupt: bool = False, times: int = 1
    ) -> int:
        """Make the next *times* sockets opened on the call close as soon as they are accepted
        (after the 101, before any event): with a close frame of *close_code* and *reason*, or
        with none at all if *abrupt* (the client then sees 1006; see `drop`). Returns how many
        sockets are now armed to fail."""
        self.socket_faults.append(SocketFault(Close(close_code, abrupt, reason), times))
        return self.pending_socket_faults

    @property
    def pending_socket_faults(self) -> int:
        return sum(fault.times for fault in self.socket_faults)

    def _take_socket_fault(self) -> Close | None:
        if not self.socket_faults:
            return None
        fault = self.socket_faults[0]
        fault.times -= 1
        if fault.times <= 0:
            self.socket_faults.popleft()
        return fault.close

    def socket_closed(self, socket: SimSocket, code: int | None) -> None:
        """Record that *socket* is closed, with the close code as observed."""
        if socket.mark_closed(code, self._clock()):
            self._changed()

    # -- sending --------------------------------------------------------------------------------

    def broadcast(
        self, event: dict[str, Any], *, on_sent: Callable[[float], None] | None = None
    ) -> None:
        """Queue *event* for every open socket of the call; `on_sent(time.monotonic())` is
        called as each socket's sender writes it."""
        text = json.dumps(event)
        item: Outgoing = text if on_sent is None else Stamped(text, on_sent)
        for socket in self.open_sockets:
            socket.queue(item)

    def reply(self, socket: SimSocket, event: dict[str, Any]) -> None:
        """Queue *event* for *socket* only (errors, `conversation.item.retrieved`)."""
        socket.queue(json.dumps(event))

    # -- refusing client events on purpose --------------------------------------------------------

    def arm_refusal(self, event_type: str, error: OpenAIError, *, times: int = 1) -> int:
        """Answer the next *times* client events of *event_type* from a sideband socket with
        *error* (as an `error` event naming their `event_id`) instead of applying them; how
        many of that type are now armed to be refused."""
        armed = self.refusals.get(event_type)
        if armed is None:
            self.refusals[event_type] = ArmedRefusal(error, times)
        else:
            armed.error, armed.times = error, armed.times + times
        return self.refusals[event_type].times

    def take_refusal(self, event_type: str) -> OpenAIError | None:
        """The error to refuse a client event of *event_type* with, counting this use; None
        if none is armed."""
        armed = self.refusals.get(event_type)
        if armed is None:
            return None
        armed.times -= 1
        if armed.times <= 0:
            del self.refusals[event_type]
        return armed.error

    def send_raw(self, text: str, *, socket_id: int | None = None) -> int:
        """Queue a text frame as-is (for malformed-frame tests); how many sockets got it."""
        return sum(socket.queue(text) for socket in self.targets(socket_id))

    def send_event(self, event: dict[str, Any], *, socket_id: int | None = None) -> int:
        """Queue an arbitrary server event, unchecked; how many sockets got it."""
        return self.send_raw(json.dumps(event), socket_id=socket_id)

    def send_frames(
        self, frames: EncodedFrames, *, socket_id: int | None = None
    ) -> list[RawFrames]:
        """Queue pre-encoded frames, unchecked and wire-only (the conversation does not change),
        on each open socket (or socket *socket_id*); what each socket's sender will report."""
        queued = []
        for socket in self.targets(socket_id):
            item = RawFrames(frames)
            if socket.queue(item):
                queued.append(item)
        return queued

    # -- what clients sent, and waiting for it ----------------------------------------------------

    def record(
        self,
        socket: SimSocket,
        event: dict[str, Any],
        *,
        valid: bool,
        raw: str,
        error: dict[str, Any] | None = None,
        arrived_at: float | None = None,
    ) -> ReceivedEvent:
        received = ReceivedEvent(socket.id, event, valid, self._clock(), raw, error, arrived_at)
        self.client_events.append(received)
        self._changed()
        return received

    def record_app_event(
        self, event: dict[str, Any], *, valid: bool, raw: str, error: dict[str, Any] | None = None
    ) -> ReceivedEvent:
        """Record a client event the app sent on its data channel (`app_events`, apart from the
        sideband's `client_events`)."""
        received = ReceivedEvent(APP_SOCKET_ID, event, valid, self._clock(), raw, error)
        self.app_events.append(received)
        self._changed()
        return received

    async def wait_for_client_event(
        self,
        type: str,
        *,
        where: Callable[[dict[str, Any]], bool] | None = None,
        after: int = 0,
        include_invalid: bool = False,
    ) -> dict[str, Any]:
        """The first accepted client event of *type* matching *where*, at index >= *after* of
        `client_events`; waits for it (no timeout: callers bound it with `trio.fail_after`).

        Refused events (`valid` False) count only with *include_invalid*.
        """
        _, received = await self.wait_for_received(
            type, where=where, after=after, include_invalid=include_invalid
        )
        return received.event

    async def wait_for_received(
        self,
        type: str,
        *,
        where: Callable[[dict[str, Any]], bool] | None = None,
        after: int = 0,
        include_invalid: bool = False,
    ) -> tuple[int, ReceivedEvent]:
        """As `wait_for_client_event`, with the record and its index in `client_events`."""
        index = after
        while True:
            while index < len(self.client_events):
                received = self.client_events[index]
                if (
                    received.event.get("type") == type
                    and (received.valid or include_invalid)
                    and (where is None or where(received.event))
                ):
                    return index, received
                index += 1
            await self._change.wait()

    async def wait_for_open_sockets(self, n: int) -> None:
        """Return once at least *n* sockets are open on the call."""
        while sum(s.open for s in self.sockets.values()) < n:
            await self._change.wait()

    async def wait_for_socket_closed(self, socket_id: int) -> int | None:
        """Wait until socket *socket_id* exists and is closed; its close code as observed."""
        while (socket := self.sockets.get(socket_id)) is None or socket.open:
            await self._change.wait()
        return socket.close_code

    def _changed(self) -> None:
        self._change.set()
        self._change = trio.Event()

    # -- driving the call -------------------------------------------------------------------------

    @property
    def items(self) -> list[dict[str, Any]]:
        """The conversation's items, in order."""
        return self.conversation.items

    @property
    def active_response(self) -> SimResponse | None:
        """The response writing to the conversation, if one is playing."""
        for response in self.responses.values():
            if not response.out_of_band:
                return response
        return None

    def response_finished(self, response: SimResponse) -> None:
        self.responses.pop(response.id, None)
        self.last_response_id = response.id
        self._changed()

    async def user_says(
        self, text: str, *, transcription_delay: float = 0.0, transcription_fails: bool = False
    ) -> str:
        """The user speaks *text*; the new item's id once the non-delayed events are queued.

        As `user_speaks` (without `respond`): if the session's voice detection creates
        responses, the model's response has started by then (`active_response`).
        """
        turn = await self.user_speaks(
            text, transcription_delay=transcription_delay, transcription_fails=transcription_fails
        )
        return turn.item_id

    async def user_speaks(
        self,
        text: str,
        *,
        transcription_delay: float = 0.0,
        transcription_fails: bool = False,
        respond: bool = False,
    ) -> UserTurn:
        """The user speaks *text*: the voice-activity events, the committed user item, and the
        response voice activity starts after it; returns once the response has started.

        A response in progress is interrupted first if the session's turn detection says so
        (`interrupt_response`, the default). When turn detection creates responses
        (`create_response`, the default), a response starts right after the commit: the next
        queued reply or tool call, or with *respond* the answer a model would choose from
        *text* (`respond_to_user`). Without it, *respond* makes the model answer once *text*
        is transcribed, as a client's `response.create` would. The transcription follows
        *transcription_delay* seconds later (or fails), from the call's nursery, if the session
        has input transcription on.

        Raises:
            ActiveResponse: with *respond* and no voice-started responses, a response is in
                progress.
            CallEnded: the call is over.
        """
        item_id, response = await user_turn(
            self,
            text,
            transcription_delay=transcription_delay,
            transcription_fails=transcription_fails,
            respond=respond,
        )
        return UserTurn(item_id, response)

    def transcription_finished(self, item_id: str) -> None:
        """The transcription of user item *item_id* completed, failed or was cancelled."""
        self.transcribing.discard(item_id)
        self._changed()

    async def wait_for_transcription(self, item_id: str) -> None:
        """Return once user item *item_id* is no longer being transcribed (at once if the
        session transcribes nothing).

        Raises:
            CallEnded: the call ended first.
        """
        while item_id in self.transcribing:
            self.check_open()
            await self._change.wait()

    async def respond_to_user(self, item_id: str, text: str) -> SimResponse:
        """Once the user's turn *item_id* (who said *text*) is transcribed, the model answers:
        it calls `extract_profile` if *text* shares a fact about the user and the session has
        that tool, else it does the next queued behaviour (a reply or a tool call). Returns once
        the response has started. (`user_speaks(..., respond=True)` does this by itself.)

        Raises:
            ActiveResponse: a response is already in progress.
            CallEnded: the call is over.
        """
        await self.wait_for_transcription(item_id)
        return answer_user(self, text)

    async def assistant_says(self, text: str, *, delta_delay: float = 0.0) -> SimResponse:
        """The model answers *text* (audio and transcript, or text, per the session); returns
        once `response.done` is queued.

        Raises:
            ActiveResponse: a response is already in progress.
        """
        response = start_response(self, kind="message", text=text, delta_delay=delta_delay)
        await response.finished.wait()
        return response

    def queue_reply(self, text: str, *, delta_delay: float = 0.0) -> int:
        """What the model says in the next response nobody scripted (one a client's or the
        app's `response.create` or voice activity starts); the queue's length."""
        self.replies.append(QueuedReply(text=text, delta_delay=delta_delay))
        self._changed()
        return len(self.replies)

    def queue_tool_call(
        self, name: str, arguments: dict[str, Any] | str, *, delta_delay: float = 0.0
    ) -> int:
        """As `queue_reply`, but in that response the model calls function *name* with
        *arguments* (an object or its JSON text); the queue's length."""
        call = FunctionCall(name, arguments)
        self.replies.append(QueuedReply(call=call, delta_delay=delta_delay))
        self._changed()
        return len(self.replies)

    async def tool_call(
        self,
        name: str,
        arguments: dict[str, Any] | str,
        *,
        wait_seconds: float = 10.0,
        delta_delay: float = 0.0,
    ) -> ToolCallResult:
        """The model calls function *name* with *arguments* (an object or its JSON text).

        Returns once `response.done` is queued, or, unless *wait_seconds* is 0, once a client
        sent a `function_call_output` for the call and then a `response.create`, or
        *wait_seconds* passed: the result says what was seen.

        Raises:
            ActiveResponse: a response is already in progress.
        """
        result = self.start_tool_call(name, arguments, delta_delay=delta_delay)
        return await self.finish_tool_call(result, wait_seconds=wait_seconds)

    def start_tool_call(
        self, name: str, arguments: dict[str, Any] | str, *, delta_delay: float = 0.0
    ) -> ToolCallResult:
        """`tool_call`'s first half, which does not block: the response starts playing (in the
        call's nursery) before anything else can happen on the call.

        Raises:
            ActiveResponse: a response is already in progress.
            CallEnded: the call is over.
        """
        start = len(self.client_events)
        response = start_response(
            self,
            kind="function_call",
            text=arguments_text(arguments),
            name=name,
            delta_delay=delta_delay,
        )
        return ToolCallResult(
            str(response.call_id),
            response.id,
            response.item_id,
            sent_at=response.sent_at,
            response=response,
            started_at_event=start,
        )

    async def finish_tool_call(
        self, result: ToolCallResult, *, wait_seconds: float
    ) -> ToolCallResult:
        """`tool_call`'s second half: wait for the response's end, then (unless *wait_seconds*
        is 0) for the client's answer, filling *result* in as things are seen; and for its
        `response.done` to be written, as a client may answer before that (its time is then in
        `result.sent_at` too)."""
        response = result.response
        if response is not None:
            await response.finished.wait()
        if wait_seconds <= 0:
            return result

        def is_output(event: dict[str, Any]) -> bool:
            item: dict[str, Any] = event["item"]
            return item.get("type") == "function_call_output" and item.get("call_id") == (
                result.call_id
            )

        with trio.move_on_after(wait_seconds):
            index, received = await self.wait_for_received(
                "conversation.item.create", where=is_output, after=result.started_at_event
            )
            result.output = received.event["item"]["output"]
            result.output_received_at = received.arrived_at
            _, created = await self.wait_for_received("response.create", after=index + 1)
            result.response_created = True
            result.response_create_received_at = created.arrived_at
            if response is not None:
                await response.done_sent.wait()
        return result

    def as_json(self) -> dict[str, Any]:
        return {
            **self._lifetime(),
            "session": self.session,
            "items": self.items,
            "sockets": [socket.as_json() for socket in self.sockets.values()],
            "socketsOpened": len(self.sockets),
            "socketFaults": self.pending_socket_faults,
            "queuedReplies": [reply.as_json() for reply in self.replies],
            "refusals": {kind: armed.times for kind, armed in self.refusals.items()},
            "clientEvents": [received.as_json() for received in self.client_events],
            "appEvents": [received.as_json() for received in self.app_events],
        }

    def summary(self) -> dict[str, Any]:
        return {
            **self._lifetime(),
            "sockets": [socket.as_json() for socket in self.sockets.values()],
            "socketsOpened": len(self.sockets),
            "items": len(self.items),
            "clientEvents": len(self.client_events),
            "appEvents": len(self.app_events),
        }

    def _lifetime(self) -> dict[str, Any]:
        return {
            "callId": self.call_id,
            "ended": self.ended,
            "endReason": self.end_reason,
            "createdAt": self.created_at,
            "expiresAt": self.created_at + self.max_seconds,
        }
