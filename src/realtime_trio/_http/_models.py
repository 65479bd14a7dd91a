"""Request and response bodies of the HTTP API, as the original server's clients send and read them.

Field names are camelCase on the wire. Unknown keys are ignored (apps send extras, such as a
`transcript` on renew); a field of the wrong type is refused, naming the field.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

# A UTF-16 surrogate code point: a JSON escape (`"\ud800"`) can name one on its own, but no
# Unicode text holds one, and neither UTF-8 nor the upstream can carry it.
_SURROGATE = re.compile("[\ud800-\udfff]")


class ApiModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", strict=True
    )


class RequestModel(ApiModel):
    """A request body: every string field must be Unicode text (unknown keys are not looked at)."""

    @field_validator("*")
    @classmethod
    def _unicode_text(cls, value: Any) -> Any:
        if isinstance(value, str) and _SURROGATE.search(value):
            raise PydanticCustomError(
                "unicode_text",
                "Input should be Unicode text, without a lone UTF-16 surrogate "
                "(a \\ud800-\\udfff escape outside a pair)",
            )
        return value


class TokenRequest(RequestModel):
    """Body of `POST /token`; every field is optional and an absent body means all defaults."""

    model: str | None = Field(default=None, description="Realtime model; REALTIME_MODEL if absent.")
    voice: str | None = Field(
        default=None, description="Output voice; without one the session is text-only."
    )
    enable_transcription: bool | None = Field(
        default=None, description="Transcribe the user's audio with TRANSCRIPTION_MODEL."
    )
    instructions: str | None = Field(default=None, description="System instructions for the call.")

    @field_validator("model", "voice")
    @classmethod
    def _empty_is_absent(cls, value: str | None) -> str | None:
        # The original tested these for truthiness: an empty string meant "not given".
        return value or None


class TokenResponse(ApiModel):
    client_secret: str = Field(description="Ephemeral key (`ek_...`) for the app's WebRTC call.")
    expires_at: int = Field(description="When the secret stops opening new calls, unix seconds.")
    raw: dict[str, Any] = Field(description="The upstream `client_secrets` answer as received.")


class HealthResponse(ApiModel):
    status: str


class ReadyResponse(ApiModel):
    status: str = Field(description="`ready`")
    replica: str = Field(description="This replica's name (`REPLICA_ID`).")
    store: str = Field(description="`memory` or `valkey`: where session state lives.")


class ErrorResponse(ApiModel):
    """Every error answer. `error` is a string because existing apps read it as one."""

    error: str = Field(description="What went wrong, for people.")
    code: str = Field(description="What went wrong, for programs.")
    field: str | None = Field(default=None, description="The request field at fault, if one is.")
    upstream_status: int | None = Field(
        default=None, description="The upstream's HTTP status, when upstream refused."
    )
    upstream_code: str | None = Field(
        default=None, description="The upstream's own error code, when it gave one."
    )


class SessionRequest(TokenRequest):
    """Body of `POST /session`: the token fields plus an optional call and an earlier session."""

    call_id: str | None = Field(default=None, description="The WebRTC call to attach at once.")
    previous_session_id: str | None = Field(
        default=None, description="A session to end (its sideband closed) before this one starts."
    )

    @field_validator("call_id", "previous_session_id")
    @classmethod
    def _empty_id_is_absent(cls, value: str | None) -> str | None:
        return value or None


class SessionResponse(ApiModel):
    session_id: str
    client_secret: str
    expires_at: int
    call_id: str | None = Field(default=None, description="Present when a callId was given.")


class SessionIdRequest(RequestModel):
    """A body naming a session (`sessionId` is required; other keys, e.g. `transcript`, ignored)."""

    session_id: str | None = None


class SessionCallRequest(RequestModel):
    session_id: str | None = None
    call_id: str | None = None


class SidebandView(ApiModel):
    state: str = Field(
        description="idle, connecting, connected, reconnecting, closed, failed, or expired "
        "(the call hit the API's maximum session duration; it is never reconnected)"
    )
    last_error: str | None = None
    ended_by: str | None = Field(
        default=None,
        description="Why the call was hung up by the server: max_call_seconds or "
        "max_session_cost_usd.",
    )
    replica: str | None = Field(
        default=None,
        description="The replica holding the session's sideband (`REPLICA_ID`); null while no "
        "replica holds it (between holders).",
    )


class SessionCallResponse(ApiModel):
    session_id: str
    call_id: str
    sideband: SidebandView


class RenewResponse(ApiModel):
    session_id: str
    client_secret: str
    expires_at: int
    instructions: str = Field(description="Instructions, then `Conversation history:` lines.")
    call_id: str | None


class CloseResponse(ApiModel):
    session_id: str | None
    closed: bool


class TranscriptEntryView(ApiModel):
    item_id: str
    role: str
    text: str
    status: str = Field(description="pending, complete, or failed (transcription failed)")
    truncated: bool | None = Field(
        default=None,
        description="Present (true) when the user interrupted this assistant turn: the API cut "
        "its unplayed audio, and the text the user never heard, from the model's context.",
    )
    audio_end_ms: int | None = Field(
        default=None, description="With `truncated`: where its audio was cut, in milliseconds."
    )


class InputTokenDetails(ApiModel):
    text_tokens: int
    audio_tokens: int
    image_tokens: int
    cached_tokens: int = Field(description="Part of the input counts above, billed cheaper.")


class OutputTokenDetails(ApiModel):
    text_tokens: int
    audio_tokens: int


class TranscriptionUsage(ApiModel):
    items: int = Field(description="Input transcriptions completed.")
    input_tokens: int
    output_tokens: int
    total_tokens: int
    seconds: float = Field(description="Audio transcribed, for models billed by duration.")
    cost_usd: float | None


class ExtractionUsage(ApiModel):
    requests: int = Field(description="Extractions (Responses API calls) answered.")
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: float | None


class UsageView(ApiModel):
    """What the session's calls used, summed over their `response.done` events."""

    responses: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    input_token_details: InputTokenDetails
    output_token_details: OutputTokenDetails
    transcription: TranscriptionUsage
    extraction: ExtractionUsage = Field(description="Profile extractions, reported apart.")
    cost_usd: float | None = Field(
        description="The call's responses, and its transcriptions where their price is known "
        "(`transcription.costUsd`), in USD; null when the realtime model has no known price "
        "(PRICING_FILE)."
    )


class SessionView(ApiModel):
    session_id: str
    call_id: str | None
    expires_at: int | None
    model: str
    voice: str | None
    instructions: str
    profile: dict[str, Any]
    transcript: list[TranscriptEntryView]
    transcript_dropped: int = Field(
        default=0,
        description="Transcript entries dropped, oldest first, to stay within "
        "TRANSCRIPT_MAX_ENTRIES.",
    )
    sideband: SidebandView
    usage: UsageView


class SessionSummary(ApiModel):
    session_id: str
    call_id: str | None
    created_at: float = Field(description="Unix time, seconds.")
    sideband: SidebandView


class SessionsResponse(ApiModel):
    sessions: list[SessionSummary]


class ExtractProfileResponse(ApiModel):
    profile: dict[str, Any] = Field(description="The stored profile after this extraction.")
    instructions: str = Field(description="The instructions the live call now runs with.")


class ToolView(ApiModel):
    name: str
    description: str
    parameters: dict[str, Any] = Field(description="The JSON schema of the tool's arguments.")
    plugin: str | None = Field(description="The plugin that provides it (null for MCP tools).")
    source: str = Field(description="Where it comes from: `plugin`, or `mcp:<server>`.")


class McpServerView(ApiModel):
    state: Literal["connecting", "connected", "reconnecting"] = Field(
        description="`connecting` until it first answers; `reconnecting` after it was lost or "
        "an attempt failed (its tools stay offered, answered `unavailable` meanwhile)."
    )
    transport: Literal["stdio", "http"]
    tools: list[str] = Field(description="The names its tools have on calls.")
    lastError: str | None = Field(description="Why the last attempt or connection failed.")


class ToolsResponse(ApiModel):
    tools: list[ToolView]
    mcpServers: dict[str, McpServerView] = Field(
        description="Each server of MCP_SERVERS_FILE, by its name there."
    )
