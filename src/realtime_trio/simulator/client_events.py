"""What the simulator does with each frame a client sends on a call's socket.

Every frame is recorded on the call. A frame that is not a JSON object, or not a client event of
the SDK's types, or one the API would refuse (an unknown item id, a second response while one is
playing...) is answered with an `error` event on that socket only; the socket stays open, as
the API's errors are recoverable. Codes the API is not documented to use are marked UNVERIFIED.
A test may also arm refusals of valid events (`SimCall.arm_refusal`): they are answered the
same way and not applied.

The app's own client events (on its WebRTC data channel, which the simulator has not got) come
in through `handle_app_event`: checked and applied the same way, recorded in
`SimCall.app_events`, and answered on every sideband socket, since both connections see the
session's events (errors and `conversation.item.retrieved` included: the simulator's choice).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any

from .calls import CallEnded, SimCall, SimSocket
from .conversation import ROOT, UnknownItem
from .errors import OpenAIError, invalid_request
from .events import created_item, error_event, server_event
from .sessions import merged, new_id
from .turns import ActiveResponse, audio_ms, commit_user_audio, start_queued, truncate_audio
from .validation import validate_client_event

# Where an answer meant for the event's sender goes: its socket, or every sideband socket.
Reply = Callable[[dict[str, Any]], None]
Handler = Callable[[SimCall, Reply, dict[str, Any]], None]
MIN_COMMIT_MS = 100


def handle_frame(
    call: SimCall, socket: SimSocket, frame: str | bytes, *, arrived_at: float | None = None
) -> None:
    """Record *frame* on *call* and act on it; answers are queued on the call's sockets.

    *arrived_at* is the `time.monotonic()` at which the frame came off the socket.
    """
    if isinstance(frame, bytes):
        raw = frame.decode("utf-8", "replace")
        _refuse(
            call,
            socket,
            {},
            raw,
            invalid_request(
                "Invalid frame: events are JSON objects sent as text frames, not binary ones.",
                code="invalid_type",
            ),
            arrived_at,
        )
        return
    try:
        parsed = json.loads(frame)
    except ValueError as exc:
        _refuse(
            call,
            socket,
            {},
            frame,
            invalid_request(f"Invalid JSON: {exc}.", code="invalid_json"),  # UNVERIFIED code
            arrived_at,
        )
        return
    event: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
    try:
        validate_client_event(parsed)
        armed = call.take_refusal(event["type"])
        if armed is not None:
            raise armed
        _HANDLERS[event["type"]](call, lambda answer: call.reply(socket, answer), event)
    except OpenAIError as refusal:
        _refuse(call, socket, event, frame, refusal, arrived_at)
    except CallEnded:  # its sockets are closing anyway
        call.record(socket, event, valid=False, raw=frame, arrived_at=arrived_at)
    except BaseException:
        call.record(socket, event, valid=False, raw=frame, arrived_at=arrived_at)
        raise
    else:
        call.record(socket, event, valid=True, raw=frame, arrived_at=arrived_at)


def handle_app_event(call: SimCall, event: dict[str, Any]) -> dict[str, Any] | None:
    """Act on *event* as if the app had sent it on its data channel; answers (an `error`
    included) go to every sideband socket. Returns the error if it was refused.

    Raises:
        CallEnded: the call is over.
    """
    call.check_open()
    raw = json.dumps(event)
    try:
        validate_client_event(event)
        _HANDLERS[event["type"]](call, call.broadcast, event)
    except OpenAIError as refusal:
        answer = _error_for(event, refusal)
        call.broadcast(answer)
        call.record_app_event(event, valid=False, raw=raw, error=answer["error"])
        return dict(answer["error"])
    except BaseException:
        call.record_app_event(event, valid=False, raw=raw)
        raise
    call.record_app_event(event, valid=True, raw=raw)
    return None


def _refuse(
    call: SimCall,
    socket: SimSocket,
    event: dict[str, Any],
    raw: str,
    refusal: OpenAIError,
    arrived_at: float | None,
) -> None:
    answer = _error_for(event, refusal)
    call.reply(socket, answer)
    call.record(socket, event, valid=False, raw=raw, error=answer["error"], arrived_at=arrived_at)


def _error_for(event: dict[str, Any], refusal: OpenAIError) -> dict[str, Any]:
    """The `error` event refusing *event*, naming its `event_id` if it had one."""
    client_event_id = event.get("event_id")
    return error_event(
        refusal.message,
        type=refusal.type,
        code=refusal.code,
        param=refusal.param,
        client_event_id=client_event_id if isinstance(client_event_id, str) else None,
    )


def _session_update(call: SimCall, reply: Reply, event: dict[str, Any]) -> None:
    update = event["session"]
    current = call.session
    if update["type"] != current["type"]:
        raise invalid_request(
            f"Invalid value: '{update['type']}'. The session type cannot change from "
            f"'{current['type']}'.",
            param="session.type",
            code="invalid_value",
        )
    if "model" in update and update["model"] != current.get("model"):
        raise invalid_request(
            "The model of a session cannot be changed once it has started.",
            param="session.model",
            code="invalid_value",
        )
    voice = ((update.get("audio") or {}).get("output") or {}).get("voice")
    current_voice = ((current.get("audio") or {}).get("output") or {}).get("voice")
    if voice is not None and voice != current_voice and call.audio_produced:
        raise invalid_request(
            "Cannot update a conversation's voice if assistant audio is present.",
            param="session.audio.output.voice",
            code="cannot_update_voice",  # UNVERIFIED code
        )
    call.session = merged(current, update)
    call.broadcast(server_event("session.updated", session=call.session))


def _item_create(call: SimCall, reply: Reply, event: dict[str, Any]) -> None:
    item = event["item"]
    after = event.get("previous_item_id")
    if after is not None and after != ROOT and after not in call.conversation:
        raise invalid_request(
            f"Error adding item: the previous item with id '{after}' does not exist.",
            param="previous_item_id",
            code="item_not_found",  # UNVERIFIED code
        )
    if item["type"] == "function_call_output" and not _has_function_call(call, item["call_id"]):
        # The output must answer a function call of the conversation (section 5.2: `call_id`
        # equals the `function_call` item's); an out-of-band response's call is not in it.
        # The words are the Responses API's for the same mistake; param and code are the
        # simulator's.  # UNVERIFIED message, param and code
        raise invalid_request(
            f"No tool call found for function call output with call_id {item['call_id']}.",
            param="item.call_id",
            code="invalid_value",
        )
    if item["type"] == "message" and item["role"] == "assistant":
        for index, part in enumerate(item["content"]):
            if part.get("type") == "output_audio":
                raise invalid_request(
                    "Assistant audio messages cannot be created by the client; "
                    "use 'output_text' content.",
                    param=f"item.content[{index}].type",
                    code="invalid_value",
                )
    item_id = item.get("id") or new_id("item")
    if item_id in call.conversation:
        raise invalid_request(
            f"Error adding item: an item with id '{item_id}' already exists.",
            param="item.id",
            code="duplicate_item_id",  # UNVERIFIED code
        )
    stored = created_item(item, item_id)
    previous = call.conversation.insert(stored, after=after)
    call.broadcast(server_event("conversation.item.added", item=stored, previous_item_id=previous))
    call.broadcast(server_event("conversation.item.done", item=stored, previous_item_id=previous))


def _has_function_call(call: SimCall, call_id: str) -> bool:
    return any(
        item.get("type") == "function_call" and item.get("call_id") == call_id
        for item in call.conversation.items
    )


def _existing(call: SimCall, item_id: str, verb: str) -> dict[str, Any]:
    try:
        return call.conversation.get(item_id)
    except UnknownItem:
        raise invalid_request(
            f"Error {verb} item: the item with id '{item_id}' does not exist.",
            param="item_id",
            code="item_not_found",  # UNVERIFIED code
        ) from None


def _item_delete(call: SimCall, reply: Reply, event: dict[str, Any]) -> None:
    item_id = event["item_id"]
    _existing(call, item_id, "deleting")
    call.conversation.delete(item_id)
    call.broadcast(server_event("conversation.item.deleted", item_id=item_id))


def _item_retrieve(call: SimCall, reply: Reply, event: dict[str, Any]) -> None:
    item = _existing(call, event["item_id"], "retrieving")
    reply(server_event("conversation.item.retrieved", item=item))


def _item_truncate(call: SimCall, reply: Reply, event: dict[str, Any]) -> None:
    item = _existing(call, event["item_id"], "truncating")
    if item["type"] != "message" or item.get("role") != "assistant":
        raise invalid_request(
            "Only assistant messages can be truncated.", param="item_id", code="invalid_value"
        )
    index = event["content_index"]
    if not 0 <= index < len(item["content"]) or item["content"][index].get("type") != (
        "output_audio"
    ):
        raise invalid_request(
            f"Invalid 'content_index': the item has no audio content at index {index}.",
            param="content_index",
            code="invalid_value",
        )
    end_ms = event["audio_end_ms"]
    if end_ms < 0:
        raise invalid_request(
            "Invalid 'audio_end_ms': expected a value of at least 0.",
            param="audio_end_ms",
            code="integer_below_min_value",
        )
    duration = audio_ms(item, index)
    if end_ms > duration:
        # The SDK documents this refusal; its words and code are the simulator's.
        raise invalid_request(
            f"Audio content of {duration}ms is shorter than {end_ms}ms.",  # UNVERIFIED message
            param="audio_end_ms",
            code="invalid_value",  # UNVERIFIED code
        )
    truncate_audio(call, item["id"], index, end_ms)


def _buffer_append(call: SimCall, reply: Reply, event: dict[str, Any]) -> None:
    try:
        audio = base64.b64decode(event["audio"], validate=True)
    except (binascii.Error, ValueError):
        raise invalid_request(
            "Invalid 'audio': expected base64-encoded audio bytes.",
            param="audio",
            code="invalid_value",
        ) from None
    call.input_audio_bytes += len(audio)


def _buffer_commit(call: SimCall, reply: Reply, event: dict[str, Any]) -> None:
    """Commit the buffer as a user item; no response follows, even with voice detection's
    `create_response` (the SDK: committing "will not create a response from the model")."""
    buffered_ms = call.input_audio_bytes / _bytes_per_ms(call.session)
    if buffered_ms < MIN_COMMIT_MS:
        raise invalid_request(
            f"Error committing input audio buffer: buffer too small. Expected at least "
            f"{MIN_COMMIT_MS}ms of audio, but buffer only has {buffered_ms:.2f}ms of audio.",
            code="input_audio_buffer_commit_empty",
        )
    call.input_audio_bytes = 0
    commit_user_audio(call, new_id("item"))


def _buffer_clear(call: SimCall, reply: Reply, event: dict[str, Any]) -> None:
    call.input_audio_bytes = 0
    call.broadcast(server_event("input_audio_buffer.cleared"))


def _output_buffer_clear(call: SimCall, reply: Reply, event: dict[str, Any]) -> None:
    """WebRTC/SIP only: nothing plays here, so only say which response's audio was cut."""
    response_id = call.active_response.id if call.active_response else call.last_response_id
    if response_id is not None:
        call.broadcast(server_event("output_audio_buffer.cleared", response_id=response_id))


def _response_create(call: SimCall, reply: Reply, event: dict[str, Any]) -> None:
    """Start the next queued behaviour (`start_queued`): refused while another response writes
    to the conversation, unless this one is out of band (`conversation: "none"`)."""
    params = event.get("response") or {}
    active = call.active_response
    if active is not None and params.get("conversation") != "none":
        raise _already_active(active.id)
    try:
        start_queued(call, params=params)
    except ActiveResponse as exc:
        raise _already_active(exc.response_id) from None


def _already_active(response_id: str) -> OpenAIError:
    return invalid_request(
        f"Conversation already has an active response in progress: {response_id}. Wait until "
        "the response is finished before creating a new one.",
        code="conversation_already_has_active_response",
    )


def _response_cancel(call: SimCall, reply: Reply, event: dict[str, Any]) -> None:
    response_id = event.get("response_id")
    response = call.active_response if response_id is None else call.responses.get(response_id)
    if response is None:
        raise invalid_request(
            "Cancellation failed: no active response found.",
            code="response_cancel_not_active",  # UNVERIFIED code
        )
    response.cancel("client_cancelled")


def _bytes_per_ms(session: dict[str, Any]) -> float:
    audio_format = ((session.get("audio") or {}).get("input") or {}).get("format") or {}
    if audio_format.get("type", "audio/pcm") == "audio/pcm":
        return 2 * int(audio_format.get("rate", 24000)) / 1000
    return 8.0  # G.711: one byte a sample at 8 kHz


_HANDLERS: dict[str, Handler] = {
    "session.update": _session_update,
    "conversation.item.create": _item_create,
    "conversation.item.delete": _item_delete,
    "conversation.item.retrieve": _item_retrieve,
    "conversation.item.truncate": _item_truncate,
    "input_audio_buffer.append": _buffer_append,
    "input_audio_buffer.commit": _buffer_commit,
    "input_audio_buffer.clear": _buffer_clear,
    "output_audio_buffer.clear": _output_buffer_clear,
    "response.create": _response_create,
    "response.cancel": _response_cancel,
}
