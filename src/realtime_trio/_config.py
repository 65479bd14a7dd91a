"""Settings: read once from the environment and `.env`, then handed to everything that needs them.

Environment variables win over `.env`; `.env` is read from the working directory.
No module reads the environment on its own: `Settings` is built at start-up and passed in.
"""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ._store_url import StoreURL, parse_store_url

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LogFormat = Literal["text", "json"]
SidebandAuth = Literal["api_key", "client_secret"]
SidebandTransport = Literal["websockets", "trio-websocket"]


class Settings(BaseSettings):
    """Every setting of the server; each field is read from the upper-case variable of its name."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        frozen=True,
    )

    openai_api_key: SecretStr | None = Field(
        default=None,
        description="Standard OpenAI API key; without it upstream endpoints answer 503.",
    )
    openai_base_url: str = Field(
        default="https://api.openai.com/v1",
        description="REST base of the upstream; the sideband WebSocket URL is derived from it.",
    )
    host: str = Field(default="0.0.0.0", description="Address the HTTP server binds to.")
    port: int = Field(default=3001, ge=0, le=65535, description="Port the HTTP server binds to.")
    realtime_model: str = Field(default="gpt-realtime", min_length=1)
    transcription_model: str = Field(default="gpt-4o-mini-transcribe", min_length=1)
    extraction_cooldown_seconds: float = Field(default=60, ge=0)
    extraction_model: str = Field(
        default="gpt-4.1-mini", min_length=1, description="Responses API model for extraction."
    )
    sideband_debug_events: bool = False
    log_level: LogLevel = "INFO"
    log_format: LogFormat = Field(
        default="text",
        description="Log lines as text, or as one JSON object a line (json) with the request's, "
        "session's and call's ids as fields.",
    )
    upstream_timeout_seconds: float = Field(
        default=15,
        gt=0,
        description="Deadline for one attempt of an upstream HTTP request (a timeout is not "
        "retried; all attempts together: UPSTREAM_RETRY_TOTAL_SECONDS).",
    )
    upstream_connect_timeout_seconds: float = Field(
        default=5, gt=0, description="Deadline for opening a connection to the upstream."
    )
    https_proxy: str | None = Field(
        default=None,
        description="Proxy for an https upstream (the usual HTTPS_PROXY); its requests then go "
        "through httpx instead of the lean client.",
    )
    http_proxy: str | None = Field(
        default=None, description="Proxy for an http upstream (the usual HTTP_PROXY)."
    )
    no_proxy: str = Field(
        default="",
        description="Comma-separated hosts (and their subdomains) reached directly (NO_PROXY); "
        "`*` for all.",
    )
    server_api_keys: SecretStr | None = Field(
        default=None,
        description="Comma-separated keys; when set, every endpoint but /healthz, /readyz and "
        "the /inspector page (which asks for a key) needs `Authorization: Bearer <one of them>`.",
    )
    cors_allow_origins: str = Field(
        default="",
        description="Comma-separated origins browsers may call from (CORS); empty: CORS off.",
    )
    max_sessions: int = Field(
        default=10_000, gt=0, description="Live sessions one server holds; beyond it, 503."
    )
    rate_limit_per_minute: int = Field(
        default=0,
        ge=0,
        description="Requests a client may make per minute to /token, /session, /session/renew "
        "and /extract-profile (token bucket); 0 turns rate limiting off.",
    )
    rate_limit_burst: int = Field(
        default=0,
        ge=0,
        description="Requests a client may make at once before the per-minute rate applies; "
        "0 means the same as RATE_LIMIT_PER_MINUTE.",
    )
    trust_x_forwarded_for: bool = Field(
        default=False,
        description="Identify clients without an API key by the last X-Forwarded-For address "
        "(only behind a proxy that sets it) instead of the connecting address.",
    )
    session_idle_ttl_seconds: float = Field(
        default=1800,
        ge=0,
        description="A session with no API use and no sideband event for this long is ended; "
        "0: never.",
    )
    transcript_max_entries: int = Field(
        default=1000,
        gt=0,
        description="Transcript entries one session keeps; beyond it the oldest are dropped.",
    )
    session_max_pending_tool_calls: int = Field(
        default=32,
        gt=0,
        description="Tool calls one session runs at once; beyond it a call is answered at once "
        "with a `busy` error output.",
    )
    upstream_retry_attempts: int = Field(
        default=2,
        ge=0,
        description="Retries of an upstream request after a connection error, 429 or 5xx.",
    )
    upstream_retry_backoff_seconds: float = Field(
        default=0.5, gt=0, description="First retry delay; doubles each retry, with jitter."
    )
    upstream_retry_max_backoff_seconds: float = Field(
        default=8,
        gt=0,
        description="Longest backoff between two upstream retries (a Retry-After from upstream "
        "is honoured beyond it, within the total).",
    )
    upstream_retry_total_seconds: float = Field(
        default=30,
        gt=0,
        description="Deadline for one upstream request with all its retries and waits.",
    )
    shutdown_grace_seconds: float = Field(
        default=5,
        ge=0,
        description="On SIGTERM or SIGINT, how long in-flight HTTP requests may take to finish.",
    )
    max_request_body_bytes: int = Field(
        default=65536, gt=0, description="Larger request bodies are refused with 413."
    )
    realtime_plugins: str = Field(
        default="", description="Comma-separated plugin modules or file paths to load at start-up."
    )
    plugin_entry_points: bool = Field(
        default=True, description="Load plugins installed with the `realtime_trio` entry point."
    )
    tool_timeout_seconds: float = Field(
        default=10, gt=0, description="How long a tool's handler may run before it is cut off."
    )
    mcp_servers_file: Path | None = Field(
        default=None,
        description="A JSON file of MCP servers whose tools every call is offered, in the "
        '`{"mcpServers": {...}}` format of Claude Desktop, Cursor and VS Code (needs '
        "realtime-trio[mcp]).",
    )
    tool_output_max_bytes: int = Field(
        default=65_536,
        gt=0,
        description="Largest tool output (as JSON) sent to the model; a larger one becomes an "
        "error output.",
    )
    base_instructions: str | None = Field(
        default=None, description="Base instructions of a session that brings none of its own."
    )
    sideband_auth: SidebandAuth = Field(
        default="api_key",
        description="Credential of the sideband: the API key, or the session's client secret.",
    )
    sideband_connect_timeout_seconds: float = Field(default=10, gt=0)
    sideband_attach_wait_seconds: float = Field(
        default=5, ge=0, description="How long POST /session/call waits to report `connected`."
    )
    sideband_reconnect_attempts: int = Field(
        default=5, ge=0, description="Reconnects tried after an unexpected drop before giving up."
    )
    sideband_reconnect_backoff_seconds: float = Field(
        default=0.5, gt=0, description="First reconnect delay; doubles each attempt, with jitter."
    )
    sideband_reconnect_max_backoff_seconds: float = Field(default=10, gt=0)
    sideband_max_message_bytes: int = Field(
        default=16 * 1024 * 1024, gt=0, description="Largest sideband frame accepted."
    )
    sideband_stable_seconds: float = Field(
        default=5,
        ge=0,
        description="How long a sideband connection must live before its drop starts a new "
        "outage; a shorter one counts as a failed reconnect attempt.",
    )
    sideband_ping_interval_seconds: float = Field(
        default=20,
        gt=0,
        description="A sideband quiet this long is pinged, to find a connection that silently "
        "went away.",
    )
    sideband_ping_timeout_seconds: float = Field(
        default=10,
        gt=0,
        description="A ping unanswered this long is a dropped sideband (it reconnects).",
    )
    sideband_send_timeout_seconds: float = Field(
        default=10,
        gt=0,
        description="Deadline for one send on the sideband; past it the connection is dropped.",
    )
    hangup_on_session_end: bool = Field(
        default=True,
        description="Ending a session (DELETE, /session/close, idle TTL) also hangs up its call "
        "upstream (/realtime/calls/{call_id}/hangup); server shutdown never does.",
    )
    metrics_enabled: bool = Field(
        default=True,
        description="GET /metrics in Prometheus text format (with SERVER_API_KEYS set, it needs "
        "a key like every other endpoint); false counts nothing.",
    )
    inspector_enabled: bool = Field(
        default=True,
        description="GET /inspector: a page showing the live sessions and, for one, its "
        "transcript, tool calls, profile, instructions, sideband and usage as they happen (with "
        "SERVER_API_KEYS set, the page asks for a key and sends it as a bearer token).",
    )
    pricing_file: Path | None = Field(
        default=None,
        description="A JSON file of prices (USD per 1M tokens, per model and modality) over the "
        "package's table; a model with no price has costUsd null.",
    )
    max_call_seconds: float = Field(
        default=0,
        ge=0,
        description="A call attached this long is hung up (0: no limit).",
    )
    max_session_cost_usd: float = Field(
        default=0,
        ge=0,
        description="A session whose call has cost this much is hung up (0: no limit; needs "
        "the model's price).",
    )
    cap_farewell_instructions: str | None = Field(
        default=None,
        description="Before hanging up for a cap, one response.create with these instructions, "
        "so the assistant tells the user the call is ending (unset: hang up at once).",
    )
    sideband_transport: SidebandTransport = Field(
        default="websockets",
        description="Sideband WebSocket client: websockets (fast) or trio-websocket (previous).",
    )

    store_url: SecretStr = Field(
        default=SecretStr("memory://"),
        description="Where session state lives: memory:// (this process alone) or "
        "valkey://[user:password@]host:port[/db] (valkeys:// for TLS; redis:// and rediss:// "
        "too), shared by every replica.",
    )
    store_key_prefix: str = Field(
        default="realtime-trio:",
        description="The prefix of every key this server writes in a shared store.",
    )
    replica_id: str | None = Field(
        default=None,
        description="This replica's name in the shared store and in GET /session/{id} "
        "(default: host name and process id).",
    )
    sideband_lease_seconds: float = Field(
        default=3,
        gt=0,
        description="How long a replica's hold on its sidebands lasts without renewal; a dead "
        "replica's sidebands are taken over within this plus a second or two.",
    )

    @field_validator(
        "log_level", "log_format", "sideband_auth", "sideband_transport", mode="before"
    )
    @classmethod
    def _normalise_case(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, str):
            return value
        return value.upper() if info.field_name == "log_level" else value.lower()

    @field_validator("openai_base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("store_url")
    @classmethod
    def _check_store_url(cls, value: SecretStr) -> SecretStr:
        parse_store_url(value.get_secret_value())  # a StoreURLError never holds the password
        return value

    def store(self) -> StoreURL:
        """`STORE_URL`, parsed."""
        return parse_store_url(self.store_url.get_secret_value())

    def replica_name(self) -> str:
        """`REPLICA_ID`, or this incarnation's host name and process id, with a random tag (in
        a container the process id is the same at every restart). Called once, at start."""
        return self.replica_id or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"

    @property
    def realtime_ws_url(self) -> str:
        """The sideband WebSocket endpoint: the REST base with http->ws and https->wss."""
        scheme, rest = self.openai_base_url.split("://", 1)
        return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/realtime"

    def client_api_keys(self) -> tuple[str, ...]:
        """The keys `SERVER_API_KEYS` lists (none: the endpoints are open)."""
        return comma_list(self.server_api_keys.get_secret_value() if self.server_api_keys else "")

    def upstream_proxy(self) -> str | None:
        """The proxy the upstream is reached through, if one is set and `NO_PROXY` does not
        name its host."""
        parts = urlsplit(self.openai_base_url)
        proxy = self.https_proxy if parts.scheme == "https" else self.http_proxy
        if not proxy:
            return None
        host = (parts.hostname or "").lower()
        for entry in comma_list(self.no_proxy.lower()):
            entry = entry.lstrip(".")
            if entry == "*" or host == entry or host.endswith("." + entry):
                return None
        return proxy

    def cors_origins(self) -> tuple[str, ...]:
        """The origins `CORS_ALLOW_ORIGINS` lists (none: no CORS headers at all)."""
        return comma_list(self.cors_allow_origins)

    def sideband_url(self, call_id: str) -> str:
        """Where the sideband for a WebRTC call attaches (`?call_id=` joins an existing call)."""
        return f"{self.realtime_ws_url}?{urlencode({'call_id': call_id})}"


def comma_list(raw: str) -> tuple[str, ...]:
    """The items of a comma-separated setting, trimmed, empty ones left out."""
    return tuple(item for item in (part.strip() for part in raw.split(",")) if item)


class SettingsError(Exception):
    """A setting has a bad value; the message is one line naming the variable."""


def load_settings(**overrides: Any) -> Settings:
    """Build `Settings` from the environment, `.env` and *overrides*, or raise `SettingsError`."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(describe_settings_error(exc)) from None


def describe_settings_error(exc: ValidationError) -> str:
    """One line naming each bad variable and why, never echoing a secret's value."""
    parts = []
    for error in exc.errors():
        name = str(error["loc"][0]).upper() if error["loc"] else "settings"
        parts.append(f"{name}: {error['msg']}")
    return "invalid setting " + "; ".join(parts)
