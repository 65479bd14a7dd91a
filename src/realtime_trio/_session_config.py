"""The realtime session configuration sent upstream when a client secret is minted.

Kept to the original server's shape, which apps in the field depend on: a voice means an audio
session with that voice, no voice means a text-only session.
"""

from __future__ import annotations

from typing import Any

from ._config import Settings


def realtime_session_config(
    settings: Settings,
    *,
    model: str | None = None,
    voice: str | None = None,
    enable_transcription: bool | None = None,
    instructions: str | None = None,
    tools: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The `session` object for `POST /realtime/client_secrets`.

    `/token` sends the original's plain config; sessions add their instructions and tools.
    """
    session: dict[str, Any] = {"type": "realtime", "model": model or settings.realtime_model}
    if instructions is not None:
        session["instructions"] = instructions
    if tools:
        session["tools"] = tools
        session["tool_choice"] = "auto"
    audio: dict[str, Any] = {}
    if voice:
        audio["output"] = {"voice": voice}
    else:
        session["output_modalities"] = ["text"]
    if enable_transcription:
        audio["input"] = {"transcription": {"model": settings.transcription_model}}
    if audio:
        session["audio"] = audio
    return session
