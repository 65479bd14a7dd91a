"""What the user and the model do on a call, as the events the API sends for it.

A user turn is the voice-activity sequence (`speech_started` .. `conversation.item.done`), with
its transcription arriving later, from a task of the call's nursery, as the API's separate ASR
model delivers it. A model response (`response.created` .. `response.done`) is played by a task
of the call's nursery too, so a client can cancel it or be refused a second one meanwhile.
Between deltas a response waits `delta_delay` seconds (none by default: the whole response is
then queued at once).

The simulator does not start responses by itself when a user turn ends, though the default
`server_vad` would: tests decide when the model speaks (`SimCall.assistant_says`, a client's
`response.create`, or `SimCall.respond_to_user`, which answers as a model would: calling
`extract_profile` when the user shares a fact about themselves).
"""

from __future__ import annotations

import copy
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


class ActiveResponse(Exception):
    """A response is already writing to the conversation; the API allows one at a time."""

    def __init__(self, response_id: str) -> None:
        super().__init__(response_id)
        self.response_id = response_id


@dataclass(eq=False)
class SimResponse:
    """One model response while it plays and after (`status` is final once `finished` is set;
    `sent_at` has when its `response.function_call_arguments.done` and `response.done` were
    written, for benchmarks)."""

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

    async def _pause(self) -> None:
        if self.delta_delay > 0:
            with trio.move_on_after(self.delta_delay):
                await self._cancelled.wait()


def start_response(
    call: SimCall,
    *,
    kind: Literal["message", "function_call"],
    text: str,
    name: str | None = None,
    params: dict[str, Any] | None = None,
    delta_delay: float = 0.0,
) -> SimResponse:
    """Start playing a response in the call's nursery; *params* is `response.create`'s `response`.

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
    call.responses[response.id] = response
    call.start_soon(_play, call, response)
    return response


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
    _open(
        call, response, assistant_item(item_id, modality=modality, text=None, status="in_progress")
    )
    where = {"response_id": rid, "item_id": item_id, "output_index": 0, "content_index": 0}
    call.broadcast(
        server_event("response.content_part.added", **where, part=content_part(modality, ""))
    )
    kind = "response.output_audio_transcript" if modality == "audio" else "response.output_text"
    said = ""
    for piece in chunks(response.text):
        if response.cancel_reason:
            break
        said += piece
        call.broadcast(server_event(f"{kind}.delta", **where, delta=piece))
        call.audio_produced = call.audio_produced or modality == "audio"
        await response._pause()
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
    rid, item_id = response.id, response.item_id
    call_id, name = str(response.call_id), str(response.name)
    first = function_call_item(
        item_id, call_id=call_id, name=name, arguments="", status="in_progress"
    )
    _open(call, response, first)
    where = {"response_id": rid, "item_id": item_id, "output_index": 0, "call_id": call_id}
    arguments = ""
    for piece in _argument_chunks(response.text):
        if response.cancel_reason:
            break
        arguments += piece
        call.broadcast(server_event("response.function_call_arguments.delta", **where, delta=piece))
        await response._pause()
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
    call: SimCall, text: str, *, transcription_delay: float, transcription_fails: bool
) -> str:
    """The user says *text*: the VAD and commit events now, the transcription later; its item id.

    A response in progress is cancelled (`turn_detected`) first if the session's turn detection
    interrupts responses, as the API does when the user barges in.
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
    if active is not None and _interrupts(call.session):
        active.cancel("turn_detected")
        await active.finished.wait()
    call.broadcast(
        server_event("input_audio_buffer.speech_stopped", audio_end_ms=end_ms, item_id=item_id)
    )
    commit_user_audio(call, item_id)
    if transcription_enabled(call.session):
        call.transcribing.add(item_id)
        call.start_soon(_transcribe, call, item_id, text, transcription_delay, transcription_fails)
    return item_id


def answer_user(call: SimCall, text: str) -> SimResponse:
    """The model's answer to the user's *text*, as a real one would give it.

    A call of `extract_profile` with `{}` if *text* shares a fact about the user (the
    extractor finds one) and the session has that function tool; the next queued reply
    otherwise (taken from the queue only once it has started).

    Raises:
        ActiveResponse: another response is writing to the conversation.
        CallEnded: the call is over.
    """
    if extract_facts(text).any() and has_function_tool(call.session, PROFILE_TOOL):
        return start_response(call, kind="function_call", text="{}", name=PROFILE_TOOL)
    reply = call.replies[0] if call.replies else None
    response = start_response(
        call,
        kind="message",
        text=reply.text if reply else DEFAULT_REPLY,
        delta_delay=reply.delta_delay if reply else 0.0,
    )
    if reply is not None:
        call.replies.popleft()
    return response


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


def _interrupts(session: dict[str, Any]) -> bool:
    turn_detection = ((session.get("audio") or {}).get("input") or {}).get("turn_detection")
    if not turn_detection:
        return False
    return turn_detection.get("interrupt_response", True) is not False


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
