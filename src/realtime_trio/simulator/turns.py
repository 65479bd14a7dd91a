"""What the user and the model do on a call, as the events the API sends for it.

A user turn is the voice-activity sequence (`speech_started` .. `conversation.item.done`), with
its transcription arriving later, from a task of the call's nursery, as the API's separate ASR
model delivers it. A model response (`response.created` .. `response.done`) is announced at
once (`response.created` .. `conversation.item.added` are queued when it starts) and played by
a task of the call's nursery, so a client can cancel it or be refused a second one meanwhile.
Between deltas a response waits `delta_delay` seconds (none by default: the whole response is
then queued at once).

Voice activity starts responses as the API's does: when the session's turn detection has
`create_response` (true unless set false), a response starts right after the user turn is
committed, before its transcription arrives (section 8 of the protocol reference). What the
model does in it is the next queued behaviour (`SimCall.queue_reply` / `queue_tool_call`; the
default reply when none is queued); with `respond`, the answer a model would choose from the
user's words (`answer_user`: calling `extract_profile` when the user shares a fact about
themselves and the session has that tool). A client's `input_audio_buffer.commit` starts none:
the SDK says committing "will not create a response from the model". With `interrupt_response`
false a response still in progress makes the voice-started one fail to start, as the SDK warns
it "may"; the simulator then starts none.

Barge-in: a user turn (with `interrupt_response`, the default) cancels the response writing to
the conversation (`turn_detected`). If it was an audio message, the API, which plays the audio
over WebRTC, cuts what was not played yet: `output_audio_buffer.cleared`, then
`conversation.item.truncated` at the audio played so far, and the item's transcript keeps only
the words heard. The simulator's playback: each transcript delta stands for
`AUDIO_MS_PER_CHARACTER` ms of audio per character, which plays during the `delta_delay` after
the delta is sent; a delta whose pause was cut short by the barge-in was not heard. (With no
delay, a response is played whole before anyone can interrupt it.)
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import trio

from .conversation import UnknownItem
from .events import (
    assistant_item,
    chunks,
    content_part,
    function_call_item,
    rate_limits,
    realtime_response,
    response_usage,
    server_event,
    tokens,
    transcription_usage,
    user_audio_item,
)
from .extractor import extract_facts
from .sessions import DEFAULT_FORMAT, new_id

if TYPE_CHECKING:
    from .calls import SimCall

DEFAULT_REPLY = "Sure, I can help with that."
ARGUMENTS_DONE = "response.function_call_arguments.done"
DONE = "response.done"
PROFILE_TOOL = "extract_profile"
# The simulated speech rate: how long the audio of one transcript character plays.
AUDIO_MS_PER_CHARACTER = 60


class ActiveResponse(Exception):
    """A response is already writing to the conversation; the API allows one at a time."""

    def __init__(self, response_id: str) -> None:
        super().__init__(response_id)
        self.response_id = response_id


@dataclass(eq=False)
class SimResponse:
    """One model response while it plays and after (`status` is final once `finished` is set;
    `sent_at` has when its `response.function_call_arguments.done` and `response.done` were
    written, for benchmarks). `said` is the text (or arguments) sent so far, `heard` the part of
    an audio message's transcript whose audio has played."""

    id: str
    kind: Literal["message", "function_call"]
    text: str
    item_id: str
    modality: str
    out_of_band: bool
    audio: dict[str, Any]
    max_output_tokens: int | str
    metadata: dict[str, str] | None
    delta_delay: float = 0.0
    name: str | None = None
    call_id: str | None = None
    status: str = "in_progress"
    cancel_reason: str | None = None
    said: str = ""
    heard: str = ""
    finished: trio.Event = field(default_factory=trio.Event)
    sent_at: dict[str, float] = field(default_factory=dict)
    done_sent: trio.Event = field(default_factory=trio.Event)
    _cancelled: trio.Event = field(default_factory=trio.Event)

    def stamp(self, kind: str) -> Callable[[float], None]:
        """What a socket's sender calls once this response's *kind* event is on the wire:
        `sent_at[kind]` keeps the first such `time.monotonic()` (of any socket), and
        `done_sent` is set once `response.done` is written."""

        def sent(at: float) -> None:
            self.sent_at.setdefault(kind, at)
            if kind == DONE:
                self.done_sent.set()

        return sent

    def cancel(self, reason: Literal["client_cancelled", "turn_detected"]) -> None:
        """Stop at the next delta; the closing events still go out, marked cancelled."""
        if self.cancel_reason is None and not self.finished.is_set():
            self.cancel_reason = reason
            self._cancelled.set()

    async def _pause(self) -> bool:
        """Wait `delta_delay` (while the last delta plays); False if cancelled meanwhile."""
        if self.delta_delay > 0:
            with trio.move_on_after(self.delta_delay):
                await self._cancelled.wait()
        return self.cancel_reason is None

    @property
    def is_audio_message(self) -> bool:
        return self.kind == "message" and self.modality == "audio"


def start_response(
    call: SimCall,
    *,
    kind: Literal["message", "function_call"],
    text: str,
    name: str | None = None,
    params: dict[str, Any] | None = None,
    delta_delay: float = 0.0,
) -> SimResponse:
    """Start a response: `response.created` .. `conversation.item.added` queued now, the rest
    played in the call's nursery; *params* is `response.create`'s `response`.

    Raises:
        ActiveResponse: another response is writing to the conversation.
        CallEnded: the call is over.
    """
    call.check_open()
    params = params or {}
    session = call.session
    out_of_band = params.get("conversation") == "none"
    active = call.active_response
    if active is not None and not out_of_band:
        raise ActiveResponse(active.id)
    modalities = params.get("output_modalities") or session.get("output_modalities") or ["audio"]
    session_output = (session.get("audio") or {}).get("output") or {}
    asked_output = (params.get("audio") or {}).get("output") or {}
    response = SimResponse(
        id=new_id("resp"),
        kind=kind,
        text=text,
        item_id=new_id("item"),
        modality="text" if modalities == ["text"] else "audio",
        out_of_band=out_of_band,
        audio={
            "output": {
                "format": asked_output.get("format", session_output.get("format", DEFAULT_FORMAT)),
                "voice": asked_output.get("voice", session_output.get("voice", "alloy")),
            }
        },
        max_output_tokens=params.get("max_output_tokens", session.get("max_output_tokens", "inf")),
        metadata=params.get("metadata"),
        delta_delay=delta_delay,
        name=name,
        call_id=new_id("call") if kind == "function_call" else None,
    )
    call.start_soon(_play, call, response)
    call.responses[response.id] = response
    if kind == "function_call":
        first = function_call_item(
            response.item_id,
            call_id=str(response.call_id),
            name=str(name),
            arguments="",
            status="in_progress",
        )
    else:
        first = assistant_item(
            response.item_id, modality=response.modality, text=None, status="in_progress"
        )
    _open(call, response, first)
    return response


def start_queued(call: SimCall, *, params: dict[str, Any] | None = None) -> SimResponse:
    """Start a response doing the next queued behaviour (`SimCall.replies`), taken from the
    queue once it has started: a message, or a function call; the default reply when nothing
    is queued.

    Raises:
        ActiveResponse: another response is writing to the conversation (and *params* is not
            out of band).
        CallEnded: the call is over.
    """
    queued = call.replies[0] if call.replies else None
    if queued is None:
        return start_response(call, kind="message", text=DEFAULT_REPLY, params=params)
    if queued.call is not None:
        response = start_response(
            call,
            kind="function_call",
            text=arguments_text(queued.call.arguments),
            name=queued.call.name,
            params=params,
            delta_delay=queued.delta_delay,
        )
    else:
        response = start_response(
            call,
            kind="message",
            text=queued.text or "",
            params=params,
            delta_delay=queued.delta_delay,
        )
    call.replies.popleft()
    return response


def arguments_text(arguments: dict[str, Any] | str) -> str:
    """A function call's `arguments` as the API sends them: JSON text (a string as it is)."""
    return arguments if isinstance(arguments, str) else json.dumps(arguments, separators=(",", ":"))


async def _play(call: SimCall, response: SimResponse) -> None:
    try:
        if response.kind == "function_call":
            await _play_function_call(call, response)
        else:
            await _play_message(call, response)
    finally:
        response.finished.set()
        call.response_finished(response)


async def _play_message(call: SimCall, response: SimResponse) -> None:
    rid, item_id, modality = response.id, response.item_id, response.modality
    where = {"response_id": rid, "item_id": item_id, "output_index": 0, "content_index": 0}
    call.broadcast(
        server_event("response.content_part.added", **where, part=content_part(modality, ""))
    )
    kind = "response.output_audio_transcript" if modality == "audio" else "response.output_text"
    for piece in chunks(response.text):
        if response.cancel_reason:
            break
        response.said += piece
        call.broadcast(server_event(f"{kind}.delta", **where, delta=piece))
        call.audio_produced = call.audio_produced or modality == "audio"
        if await response._pause():  # this piece's audio played to its end
            response.heard += piece
    said = response.said
    final = {"transcript": said} if modality == "audio" else {"text": said}
    call.broadcast(server_event(f"{kind}.done", **where, **final))
    call.broadcast(
        server_event("response.content_part.done", **where, part=content_part(modality, said))
    )
    status = "incomplete" if response.cancel_reason else "completed"
    _close(
        call, response, assistant_item(item_id, modality=modality, text=said, status=status), said
    )


async def _play_function_call(call: SimCall, response: SimResponse) -> None:
    """The arguments' deltas, then `response.function_call_arguments.done` even when the
    response was cancelled (with the arguments so far, the item `incomplete`), as the SDK says
    of that event."""
    rid, item_id = response.id, response.item_id
    call_id, name = str(response.call_id), str(response.name)
    where = {"response_id": rid, "item_id": item_id, "output_index": 0, "call_id": call_id}
    for piece in _argument_chunks(response.text):
        if response.cancel_reason:
            break
        response.said += piece
        call.broadcast(server_event("response.function_call_arguments.delta", **where, delta=piece))
        await response._pause()
    arguments = response.said
    call.broadcast(
        server_event(
            "response.function_call_arguments.done", **where, name=name, arguments=arguments
        ),
        on_sent=response.stamp(ARGUMENTS_DONE),
    )
    status = "incomplete" if response.cancel_reason else "completed"
    final = function_call_item(
        item_id, call_id=call_id, name=name, arguments=arguments, status=status
    )
    _close(call, response, final, arguments)


def _open(call: SimCall, response: SimResponse, item: dict[str, Any]) -> None:
    """`response.created` .. `conversation.item.added`: the response and its item announced."""
    call.broadcast(server_event("response.created", response=_response(call, response, [])))
    call.broadcast(server_event("rate_limits.updated", rate_limits=rate_limits()))
    call.broadcast(
        server_event(
            "response.output_item.added", response_id=response.id, output_index=0, item=item
        )
    )
    if not response.out_of_band:
        previous = call.conversation.insert(item)
        call.broadcast(
            server_event("conversation.item.added", item=item, previous_item_id=previous)
        )


def _close(call: SimCall, response: SimResponse, item: dict[str, Any], said: str) -> None:
    """`response.output_item.done` .. `response.done`: the final item and response."""
    call.broadcast(
        server_event(
            "response.output_item.done", response_id=response.id, output_index=0, item=item
        )
    )
    if not response.out_of_band:
        try:
            call.conversation.replace(item)
            previous = call.conversation.previous_id(item["id"])
        except UnknownItem:
            pass  # the client deleted it meanwhile
        else:
            call.broadcast(
                server_event("conversation.item.done", item=item, previous_item_id=previous)
            )
    if response.cancel_reason:
        response.status = "cancelled"
        details = {"type": "cancelled", "reason": response.cancel_reason}
    else:
        response.status = "completed"
        details = None
    usage = response_usage(
        _context_tokens(call),
        said,
        audio=response.kind == "message" and response.modality == "audio",
    )
    done = _response(call, response, [item], status_details=details, usage=usage)
    call.broadcast(server_event("response.done", response=done), on_sent=response.stamp(DONE))


def _response(
    call: SimCall,
    response: SimResponse,
    output: list[dict[str, Any]],
    *,
    status_details: dict[str, Any] | None = None,
    usage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The `RealtimeResponse` object of `response.created` and `response.done`."""
    return realtime_response(
        response.id,
        status=response.status,
        output=copy.deepcopy(output),
        conversation_id=None if response.out_of_band else call.conversation_id,
        modality=response.modality,
        max_output_tokens=response.max_output_tokens,
        metadata=response.metadata,
        audio=response.audio,
        status_details=status_details,
        usage=usage,
    )


def _context_tokens(call: SimCall) -> int:
    instructions = str(call.session.get("instructions") or "")
    return tokens(instructions) + 12 * len(call.conversation.items)


def _argument_chunks(arguments: str, size: int = 16) -> list[str]:
    return [arguments[i : i + size] for i in range(0, len(arguments), size)] or [""]


async def user_turn(
    call: SimCall,
    text: str,
    *,
    transcription_delay: float,
    transcription_fails: bool,
    respond: bool = False,
) -> tuple[str, SimResponse | None]:
    """The user says *text*: the VAD and commit events now, the transcription later; its item
    id, and the response voice activity started after the commit (None if it started none).

    A response in progress is cancelled (`turn_detected`) first if the session's turn detection
    interrupts responses, as the API does when the user barges in (see the module docstring for
    the truncation of the audio the user did not hear). The voice-started response is the next
    queued behaviour, or with *respond* `answer_user`'s; when voice activity starts none,
    *respond* starts `answer_user`'s once *text* is transcribed.

    Raises:
        ActiveResponse: with *respond* and no voice-started responses, a response is in
            progress.
        CallEnded: the call is over.
    """
    call.check_open()
    item_id = new_id("item")
    start_ms = call.audio_ms + 200
    end_ms = start_ms + 300 + 250 * len(text.split())
    call.audio_ms = end_ms
    call.broadcast(
        server_event("input_audio_buffer.speech_started", audio_start_ms=start_ms, item_id=item_id)
    )
    active = call.active_response
    if active is not None and _turn_detection(call.session, "interrupt_response"):
        active.cancel("turn_detected")
        await active.finished.wait()
        if active.is_audio_message:
            _cut_unplayed_audio(call, active)
    call.broadcast(
        server_event("input_audio_buffer.speech_stopped", audio_end_ms=end_ms, item_id=item_id)
    )
    commit_user_audio(call, item_id)
    if transcription_enabled(call.session):
        call.transcribing.add(item_id)
        call.start_soon(_transcribe, call, item_id, text, transcription_delay, transcription_fails)
    response = None
    if _turn_detection(call.session, "create_response"):
        if call.active_response is None:
            response = answer_user(call, text) if respond else start_queued(call)
    elif respond:  # as a client's response.create would, once the words are known
        await call.wait_for_transcription(item_id)
        response = answer_user(call, text)
    return item_id, response


def _cut_unplayed_audio(call: SimCall, response: SimResponse) -> None:
    """What the API does over WebRTC when the user interrupts an audio message: the unplayed
    audio is dropped, then the item is truncated where playback stopped.

    The order (`response.done` of the cancelled response, then `output_audio_buffer.cleared`,
    then `conversation.item.truncated`, then the user's `speech_stopped`) is the simulator's
    choice: the SDK says the buffer is cleared when the user interrupts in VAD mode, and the
    truncation can only name the played length once playback has stopped; the API documents no
    order for them.
    """
    # UNVERIFIED order (and whether the sideband sees `output_audio_buffer.cleared` at all)
    call.broadcast(server_event("output_audio_buffer.cleared", response_id=response.id))
    with contextlib.suppress(UnknownItem):  # the client deleted the item meanwhile
        truncate_audio(call, response.item_id, 0, len(response.heard) * AUDIO_MS_PER_CHARACTER)


def audio_ms(item: dict[str, Any], content_index: int) -> int:
    """How long the audio of an assistant item's audio part plays (`AUDIO_MS_PER_CHARACTER`)."""
    return len(item["content"][content_index].get("transcript") or "") * AUDIO_MS_PER_CHARACTER


def truncate_audio(call: SimCall, item_id: str, content_index: int, audio_end_ms: int) -> None:
    """Cut an assistant audio part at *audio_end_ms* (its transcript keeps the characters
    heard by then) and send `conversation.item.truncated`.

    Raises:
        UnknownItem: the item is not in the conversation.
    """
    item = call.conversation.get(item_id)
    part = item["content"][content_index]
    part["transcript"] = (part.get("transcript") or "")[: audio_end_ms // AUDIO_MS_PER_CHARACTER]
    call.conversation.replace(item)
    call.broadcast(
        server_event(
            "conversation.item.truncated",
            item_id=item_id,
            content_index=content_index,
            audio_end_ms=audio_end_ms,
        )
    )


def answer_user(call: SimCall, text: str) -> SimResponse:
    """The model's answer to the user's *text*, as a real one would give it.

    A call of `extract_profile` with `{}` if *text* shares a fact about the user (the
    extractor finds one) and the session has that function tool; the next queued behaviour
    otherwise (`start_queued`).

    Raises:
        ActiveResponse: another response is writing to the conversation.
        CallEnded: the call is over.
    """
    if extract_facts(text).any() and has_function_tool(call.session, PROFILE_TOOL):
        return start_response(call, kind="function_call", text="{}", name=PROFILE_TOOL)
    return start_queued(call)


def has_function_tool(session: dict[str, Any], name: str) -> bool:
    return any(
        tool.get("type") == "function" and tool.get("name") == name
        for tool in session.get("tools") or []
    )


def commit_user_audio(call: SimCall, item_id: str) -> None:
    """`input_audio_buffer.committed` and the user item it becomes, appended."""
    item = user_audio_item(item_id)
    previous = call.conversation.insert(item)
    call.broadcast(
        server_event("input_audio_buffer.committed", item_id=item_id, previous_item_id=previous)
    )
    call.broadcast(server_event("conversation.item.added", item=item, previous_item_id=previous))
    call.broadcast(server_event("conversation.item.done", item=item, previous_item_id=previous))


def transcription_enabled(session: dict[str, Any]) -> bool:
    """Input transcription is off unless the session configures a model for it."""
    return bool(((session.get("audio") or {}).get("input") or {}).get("transcription"))


def _turn_detection(session: dict[str, Any], flag: str) -> bool:
    """Whether the session detects turns and *flag* (`create_response`, `interrupt_response`)
    is on: both are unless set false."""
    turn_detection = ((session.get("audio") or {}).get("input") or {}).get("turn_detection")
    if not turn_detection:
        return False
    return turn_detection.get(flag, True) is not False


async def _transcribe(call: SimCall, item_id: str, text: str, delay: float, fails: bool) -> None:
    try:
        await _transcription_events(call, item_id, text, delay, fails)
    finally:
        call.transcription_finished(item_id)


async def _transcription_events(
    call: SimCall, item_id: str, text: str, delay: float, fails: bool
) -> None:
    await trio.sleep(delay)
    where = {"item_id": item_id, "content_index": 0}
    if fails:
        error = {
            "type": "server_error",
            "code": "transcription_failed",
            "message": "Input transcription failed for this item.",
            "param": None,
        }
        call.broadcast(
            server_event("conversation.item.input_audio_transcription.failed", **where, error=error)
        )
        return
    for piece in chunks(text):
        call.broadcast(
            server_event("conversation.item.input_audio_transcription.delta", **where, delta=piece)
        )
    call.broadcast(
        server_event(
            "conversation.item.input_audio_transcription.completed",
            **where,
            transcript=text,
            usage=transcription_usage(text),
        )
    )
    try:
        item = call.conversation.get(item_id)
    except UnknownItem:
        return
    item["content"][0]["transcript"] = text
    call.conversation.replace(item)
