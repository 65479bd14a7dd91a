"""The session object the API answers with: the requested config over the API's defaults."""

from __future__ import annotations

import copy
import secrets
from typing import Any

DEFAULT_INSTRUCTIONS = (
    "You are a helpful, friendly voice assistant. Keep your answers short and speak naturally."
)
DEFAULT_FORMAT = {"type": "audio/pcm", "rate": 24000}


def new_id(prefix: str) -> str:
    """An id in the API's style: a prefix and random characters (`sess_...`, `rtc_...`)."""
    return f"{prefix}_{secrets.token_hex(12)}"


def realtime_session(requested: dict[str, Any]) -> dict[str, Any]:
    """The full effective realtime session for a requested (validated) config."""
    defaults: dict[str, Any] = {
        "type": "realtime",
        "object": "realtime.session",
        "id": new_id("sess"),
        "model": "gpt-realtime",
        "output_modalities": ["audio"],
        "instructions": DEFAULT_INSTRUCTIONS,
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
        "include": None,
        "audio": {
            "input": {
                "format": dict(DEFAULT_FORMAT),
                "noise_reduction": None,
                "transcription": None,
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.5,
                    "prefix_padding_ms": 300,
                    "silence_duration_ms": 500,
                    "create_response": True,
                    "interrupt_response": True,
                    "idle_timeout_ms": None,
                },
            },
            "output": {"format": dict(DEFAULT_FORMAT), "voice": "alloy", "speed": 1.0},
        },
    }
    return merged(defaults, requested)


def transcription_session(requested: dict[str, Any]) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "type": "transcription",
        "object": "realtime.transcription_session",
        "id": new_id("sess"),
        "include": None,
        "audio": {
            "input": {
                "format": dict(DEFAULT_FORMAT),
                "noise_reduction": None,
                "transcription": None,
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.5,
                    "prefix_padding_ms": 300,
                    "silence_duration_ms": 500,
                },
            }
        },
    }
    return merged(defaults, requested)


def merged(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """*base* with *update* laid over it, objects merged key by key (as `session.update` does)."""
    result = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result
