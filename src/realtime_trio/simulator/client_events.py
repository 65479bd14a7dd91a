"""What the simulator does with each frame a client sends on a call's socket.

Every frame is recorded on the call. A frame that is not a JSON object, or not a client event of
the SDK's types, or one the API would refuse (an unknown item id, a second response while one is
playing...) is answered with an `error` event on that socket only; the socket stays open, as
the API's errors are recoverable. Codes the API is not documented to use are marked UNVERIFIED.
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
from .turns import ActiveResponse, commit_user_audio, start_response
from .validation import validate_client_event

Handler = Callable[[SimCall, SimSocket, dict[str, Any]], None]
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
        _HANDLERS[event["type"]](call, socket, event)
    except OpenAIError as refusal:
        _refuse(call, socket, event, frame, refusal, arrived_at)
    except CallEnded:  # its sockets are closing anyway
        call.record(socket, event, valid=False, raw=frame, arrived_at=arrived_at)
    except BaseException:
        call.record(socket, event, valid=False, raw=frame, arrived_at=arrived_at)
        raise
    else:
        call.record(socket, event, valid=True, raw=frame, arrived_at=arrived_at)


def _refuse(
    call: SimCall,
    socket: SimSocket,
    event: dict[str, Any],
    raw: str,
    refusal: OpenAIError,
    arrived_at: float | None,
) -> None:
    client_event_id = event.get("event_id")
    answer = error_event(
        refusal.message,
        type=refusal.type,
        code=refusal.code,
        param=refusal.param,
        client_event_id=client_event_id if isinstance(client_event_id, str) else None,
    )
    call.reply(socket, answer)
    call.record(socket, event, valid=False, raw=raw, error=answer["error"], arrived_at=arrived_at)


def _session_update(call: SimCall, socket: SimSocket, event: dict[str, Any]) -> None:
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


def _item_create(call: SimCall, socket: SimSocket, event: dict[str, Any]) -> None:
    item = event["item"]
    after = event.get("previous_item_id")
    if after is not None and after != ROOT and after not in call.conversation:
        raise invalid_request(
            f"Error adding item: the previous item with id '{after}' does not exist.",
            param="previous_item_id",
            code="item_not_found",  # UNVERIFIED code
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


def _existing(call: SimCall, item_id: str, verb: str) -> dict[str, Any]:
    try:
        return call.conversation.get(item_id)
    except UnknownItem:
        raise invalid_request(
            f"Error {verb} item: the item with id '{item_id}' does not exist.",
            param="item_id",
            code="item_not_found",  # UNVERIFIED code
        ) from None


def _item_delete(call: SimCall, socket: SimSocket, event: dict[str, Any]) -> None:
    item_id = event["item_id"]
    _existing(call, item_id, "deleting")
    call.conversation.delete(item_id)
    call.broadcast(server_event("conversation.item.deleted", item_id=item_id))


def _item_retrieve(call: SimCall, socket: SimSocket, event: dict[str, Any]) -> None:
    item = _existing(call, event["item_id"], "retrieving")
    call.reply(socket, server_event("conversation.item.retrieved", item=item))


def _item_truncate(call: SimCall, socket: SimSocket, event: dict[str, Any]) -> None:
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
    if event["audio_end_ms"] < 0:
        raise invalid_request(
            "Invalid 'audio_end_ms': expected a value of at least 0.",
            param="audio_end_ms",
            code="integer_below_min_value",
        )
    call.broadcast(
        server_event(
            "conversation.item.truncated",
            item_id=item["id"],
            content_index=index,
            audio_end_ms=event["audio_end_ms"],
        )
    )


def _buffer_append(call: SimCall, socket: SimSocket, event: dict[str, Any]) -> None:
    try:
        audio = base64.b64decode(event["audio"], validate=True)
    except (binascii.Error, ValueError):
        raise invalid_request(
            "Invalid 'audio': expected base64-encoded audio bytes.",
            param="audio",
            code="invalid_value",
        ) from None
    call.input_audio_bytes += len(audio)


def _buffer_commit(call: SimCall, socket: SimSocket, event: dict[str, Any]) -> None:
    buffered_ms = call.input_audio_bytes / _bytes_per_ms(call.session)
    if buffered_ms < MIN_COMMIT_MS:
        raise invalid_request(
            f"Error committing input audio buffer: buffer too small. Expected at least "
            f"{MIN_COMMIT_MS}ms of audio, but buffer only has {buffered_ms:.2f}ms of audio.",
            code="input_audio_buffer_commit_empty",
        )
    call.input_audio_bytes = 0
    commit_user_audio(call, new_id("item"))


def _buffer_clear(call: SimCall, socket: SimSocket, event: dict[str, Any]) -> None:
    call.input_audio_bytes = 0
    call.broadcast(server_event("input_audio_buffer.cleared"))


def _output_buffer_clear(call: SimCall, socket: SimSocket, event: dict[str, Any]) -> None:
    """WebRTC/SIP only: nothing plays here, so only say which response's audio was cut."""
    response_id = call.active_response.id if call.active_response else call.last_response_id
    if response_id is not None:
        call.broadcast(server_event("output_audio_buffer.cleared", response_id=response_id))


def _response_create(call: SimCall, socket: SimSocket, event: dict[str, Any]) -> None:
    params = event.get("response") or {}
    active = call.active_response
    if active is not None and params.get("conversation") != "none":
        raise _already_active(active.id)
    reply = call.next_reply()
    try:
        start_response(
            call, kind="message", text=reply.text, params=params, delta_delay=reply.delta_delay
        )
    except ActiveResponse as exc:
        raise _already_active(exc.response_id) from None


def _already_active(response_id: str) -> OpenAIError:
    return invalid_request(
        f"Conversation already has an active response in progress: {response_id}. Wait until "
        "the response is finished before creating a new one.",
        code="conversation_already_has_active_response",
    )


def _response_cancel(call: SimCall, socket: SimSocket, event: dict[str, Any]) -> None:
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
