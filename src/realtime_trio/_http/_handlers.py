"""HTTP handlers: validate the body, call the layer below, shape the answer. Nothing more."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from quart import Blueprint, Response
from quart_schema import document_response

from .._errors import MissingField, StoreUnavailable, UnknownSession
from .._session_config import realtime_session_config
from .._sessions import SessionOptions
from ._event_stream import EVENT_STREAM_HEADERS, event_stream, snapshot_stream
from ._models import (
    CloseResponse,
    ErrorResponse,
    ExtractProfileResponse,
    HealthResponse,
    ReadyResponse,
    RenewResponse,
    SessionCallRequest,
    SessionCallResponse,
    SessionIdRequest,
    SessionRequest,
    SessionResponse,
    SessionsResponse,
    SessionView,
    SidebandView,
    TokenRequest,
    TokenResponse,
    ToolsResponse,
)
from ._schema import answers, takes
from ._services import current_services

blueprint = Blueprint("api", __name__)

F = TypeVar("F", bound=Callable[..., object])

UPSTREAM_ERRORS = (400, 413, 429, 502, 503, 504)  # 429: RATE_LIMIT_PER_MINUTE


def errors_documented(*statuses: int) -> Callable[[F], F]:
    """Put the JSON error body in the OpenAPI document for each of *statuses*."""

    def decorate(func: F) -> F:
        for status in statuses:
            func = document_response(ErrorResponse, status)(func)
        return func

    return decorate


def require_session_id(session_id: str | None) -> str:
    if not session_id:
        raise MissingField("sessionId is required", field="sessionId")
    return session_id


@blueprint.get("/healthz")
@answers(HealthResponse)
async def healthz() -> HealthResponse:
    """Liveness: answers without touching upstream."""
    return HealthResponse(status="ok")


@blueprint.get("/readyz")
@answers(ReadyResponse)
@errors_documented(503)
async def readyz() -> ReadyResponse:
    """Readiness, for load balancers: 200 while the session store answers, else 503."""
    sessions = current_services().sessions
    replica = sessions.replica
    if replica is not None and not await replica.ready():
        raise StoreUnavailable()
    return ReadyResponse(
        status="ready",
        replica=sessions.replica_name,
        store=replica.tables.kind if replica is not None else "memory",
    )


@blueprint.post("/token")
@takes(TokenRequest)
@answers(TokenResponse)
@errors_documented(*UPSTREAM_ERRORS)
async def token(data: TokenRequest) -> TokenResponse:
    """Mint an ephemeral client secret for a Realtime call (the body is optional)."""
    services = current_services()
    session = realtime_session_config(
        services.settings,
        model=data.model,
        voice=data.voice,
        enable_transcription=data.enable_transcription,
        instructions=data.instructions,
    )
    secret = await services.upstream.create_client_secret(session)
    return TokenResponse(client_secret=secret.value, expires_at=secret.expires_at, raw=secret.raw)


@blueprint.post("/session")
@takes(SessionRequest)
@answers(SessionResponse)
@errors_documented(*UPSTREAM_ERRORS)
async def create_session(data: SessionRequest) -> SessionResponse:
    """Create a session: mint its client secret, and attach its sideband if a callId is given."""
    options = SessionOptions(
        model=data.model,
        voice=data.voice,
        enable_transcription=bool(data.enable_transcription),
        instructions=data.instructions,
    )
    session, secret = await current_services().sessions.create(
        options, call_id=data.call_id, previous_session_id=data.previous_session_id
    )
    answer = SessionResponse(
        session_id=session.session_id, client_secret=secret.value, expires_at=secret.expires_at
    )
    if data.call_id:
        answer.call_id = data.call_id
    return answer


@blueprint.post("/session/call")
@takes(SessionCallRequest)
@answers(SessionCallResponse)
@errors_documented(400, 404)
async def attach_call(data: SessionCallRequest) -> SessionCallResponse:
    """Record the app's WebRTC call id and attach (or move) the session's sideband to it."""
    if not data.session_id or not data.call_id:
        raise MissingField("sessionId and callId are required")
    services = current_services()
    session = await services.sessions.find(data.session_id, moving_to=data.call_id)
    sideband = await session.attach(data.call_id)
    await sideband.wait_settled(services.settings.sideband_attach_wait_seconds)
    return SessionCallResponse(
        session_id=session.session_id,
        call_id=data.call_id,
        sideband=SidebandView.model_validate(sideband.describe()),
    )


@blueprint.post("/session/renew")
@takes(SessionIdRequest)
@answers(RenewResponse)
@errors_documented(400, 404, 429, 502, 503, 504)
async def renew_session(data: SessionIdRequest) -> RenewResponse:
    """Mint a new client secret for a session, with instructions to rehydrate its next call."""
    session_id = require_session_id(data.session_id)
    session, secret, instructions = await current_services().sessions.renew(session_id)
    return RenewResponse(
        session_id=session_id,
        client_secret=secret.value,
        expires_at=secret.expires_at,
        instructions=instructions,
        call_id=session.record.call_id,
    )


@blueprint.post("/session/close")
@takes(SessionIdRequest)
@answers(CloseResponse)
@errors_documented(400)
async def close_session(data: SessionIdRequest) -> CloseResponse:
    """End a session; `closed` is false for an unknown id."""
    session_id = require_session_id(data.session_id)
    closed = await current_services().sessions.end(session_id)
    return CloseResponse(session_id=session_id, closed=closed)


@blueprint.get("/session/<session_id>")
@answers(SessionView)
@errors_documented(404)
async def get_session(session_id: str) -> SessionView:
    """The session as the server knows it, with its transcript in conversation order."""
    return SessionView.model_validate(await current_services().sessions.describe(session_id))


@blueprint.get("/sessions")
@answers(SessionsResponse)
async def list_sessions() -> SessionsResponse:
    """The sessions this server runs now (with a shared store: the ones this replica holds)."""
    return SessionsResponse.model_validate({"sessions": current_services().sessions.listing()})


@blueprint.get("/session/<session_id>/events")
@errors_documented(404)
async def session_events(session_id: str) -> Response:
    """Server-Sent Events (`text/event-stream`): a `snapshot` of the session, then what happens
    in it as it happens (transcript entries, tool calls, instructions, profile, sideband state,
    usage), one JSON object per `data:` line, until the session ends. A listener too slow to
    keep up is dropped; the call never waits for it."""
    sessions = current_services().sessions
    snapshot = await sessions.describe(session_id)  # 404 before any stream starts
    local = sessions.local(session_id)
    stream = event_stream(local, snapshot) if local else snapshot_stream(sessions, session_id)
    response = Response(stream, 200, EVENT_STREAM_HEADERS)
    response.timeout = None  # as long as the session lasts
    return response


@blueprint.delete("/session/<session_id>")
@errors_documented(404)
async def delete_session(session_id: str) -> tuple[str, int]:
    """End a session: 204, or 404 for an unknown id."""
    if not await current_services().sessions.end(session_id):
        raise UnknownSession()
    return "", 204


@blueprint.post("/extract-profile")
@takes(SessionIdRequest)
@answers(ExtractProfileResponse)
@errors_documented(400, 404, 429, 502, 503, 504)
async def extract_profile(data: SessionIdRequest) -> ExtractProfileResponse:
    """Extract the profile from the transcript now (no cooldown) and push the new instructions."""
    session = await current_services().sessions.find(require_session_id(data.session_id))
    profile = await session.extract_now()
    return ExtractProfileResponse(profile=profile, instructions=session.instructions())


@blueprint.get("/tools")
@answers(ToolsResponse)
async def list_tools() -> ToolsResponse:
    """The function tools offered on calls (name, description, parameters schema, source:
    `plugin` or `mcp:<server>`), and the state of each MCP server."""
    services = current_services()
    tools = [registered.describe() for registered in services.plugins.tools]
    return ToolsResponse.model_validate({"tools": tools, "mcpServers": services.mcp_servers()})
