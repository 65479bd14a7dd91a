"""The shapes the simulator sends on a call's sockets: server events, items and responses.

Pure functions building plain dicts in the SDK's shapes (`openai.types.realtime`); `server_event`
checks each event against the SDK before it leaves, so every shape here is held to the same
standard as the real API's.
"""

from __future__ import annotations

import math
from typing import Any

from .sessions import new_id
from .validation import check_server_event


def server_event(type: str, **fields: Any) -> dict[str, Any]:
    """A server event with a fresh `event_..` id, checked against the SDK's types."""
    event = {"type": type, "event_id": new_id("event"), **fields}
    check_server_event(event)
    return event


def error_event(
    message: str,
    *,
    type: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
    client_event_id: str | None = None,
) -> dict[str, Any]:
    """The `error` event: `error.event_id` names the client event at fault (null if unknown)."""
    error = {
        "type": type,
        "code": code,
        "message": message,
        "param": param,
        "event_id": client_event_id,
    }
    return server_event("error", error=error)


def user_audio_item(item_id: str, transcript: str | None = None) -> dict[str, Any]:
    """The user message a committed audio turn becomes (its transcript arrives later)."""
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "status": "completed",
        "role": "user",
        "content": [{"type": "input_audio", "transcript": transcript}],
    }


def assistant_item(item_id: str, *, modality: str, text: str | None, status: str) -> dict[str, Any]:
    """The model's message: an audio part with its transcript, or a text part.

    `text=None` is the item as first announced, before any content part exists.
    """
    content: list[dict[str, Any]] = []
    if text is not None:
        content.append(
            {"type": "output_audio", "transcript": text}
            if modality == "audio"
            else {"type": "output_text", "text": text}
        )
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def content_part(modality: str, text: str) -> dict[str, Any]:
    """The `part` of `response.content_part.*` (the SDK's part types are `audio` and `text`)."""
    return (
        {"type": "audio", "transcript": text}
        if modality == "audio"
        else {"type": "text", "text": text}
    )


def function_call_item(
    item_id: str, *, call_id: str, name: str, arguments: str, status: str
) -> dict[str, Any]:
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "function_call",
        "status": status,
        "name": name,
        "call_id": call_id,
        "arguments": arguments,
    }


def created_item(item: dict[str, Any], item_id: str) -> dict[str, Any]:
    """A client-created item as the conversation holds it: with its id, object and status."""
    stored = {"id": item_id, "object": "realtime.item", **item}
    stored.setdefault("status", "completed")
    return stored


def realtime_response(
    response_id: str,
    *,
    status: str,
    output: list[dict[str, Any]],
    conversation_id: str | None,
    modality: str,
    max_output_tokens: int | str,
    metadata: dict[str, str] | None,
    audio: dict[str, Any],
    status_details: dict[str, Any] | None = None,
    usage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The `RealtimeResponse` object of `response.created` and `response.done`."""
    return {
        "object": "realtime.response",
        "id": response_id,
        "status": status,
        "status_details": status_details,
        "output": output,
        "conversation_id": conversation_id,
        "output_modalities": [modality],
        "max_output_tokens": max_output_tokens,
        "metadata": metadata,
        "audio": audio,
        "usage": usage,
    }


def rate_limits() -> list[dict[str, Any]]:
    """Generous limits, as `rate_limits.updated` reports them at the start of a response."""
    return [
        {"name": "requests", "limit": 10_000, "remaining": 9_999, "reset_seconds": 0.006},
        {"name": "tokens", "limit": 2_000_000, "remaining": 1_999_000, "reset_seconds": 0.03},
    ]


def tokens(text: str) -> int:
    """A rough token count: about four characters a token."""
    return max(1, math.ceil(len(text) / 4))


def response_usage(input_tokens: int, output_text: str, *, audio: bool) -> dict[str, Any]:
    """The `usage` of `response.done`: audio output costs about four tokens a text token."""
    text_out = tokens(output_text)
    audio_out = text_out * 4 if audio else 0
    return {
        "total_tokens": input_tokens + text_out + audio_out,
        "input_tokens": input_tokens,
        "output_tokens": text_out + audio_out,
        "input_token_details": {
            "text_tokens": input_tokens,
            "audio_tokens": 0,
            "image_tokens": 0,
            "cached_tokens": 0,
            "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0},
        },
        "output_token_details": {"text_tokens": text_out, "audio_tokens": audio_out},
    }


def transcription_usage(text: str) -> dict[str, Any]:
    """The `usage` of `...input_audio_transcription.completed`, token-billed models' shape."""
    audio_tokens = tokens(text) * 3
    text_tokens = tokens(text)
    return {
        "type": "tokens",
        "input_tokens": audio_tokens,
        "output_tokens": text_tokens,
        "total_tokens": audio_tokens + text_tokens,
        "input_token_details": {"audio_tokens": audio_tokens, "text_tokens": 0},
    }


def chunks(text: str, pieces: int = 3) -> list[str]:
    """*text* cut at word boundaries into at most *pieces* deltas that join back to it."""
    words = text.split(" ")
    if len(words) <= 1:
        return [text] if text else []
    size = math.ceil(len(words) / pieces)
    parts = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
    return [part + " " for part in parts[:-1]] + [parts[-1]]
