"""HTTP handlers: validate the body, call the layer below, shape the answer. Nothing more."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from quart import Blueprint
from quart_schema import document_response, validate_request, validate_response

from .models import ErrorResponse, HealthResponse, TokenRequest, TokenResponse
from .services import current_services
from .session_config import realtime_session_config

blueprint = Blueprint("api", __name__)

F = TypeVar("F", bound=Callable[..., object])


def errors_documented(*statuses: int) -> Callable[[F], F]:
    """Put the JSON error body in the OpenAPI document for each of *statuses*."""

    def decorate(func: F) -> F:
        for status in statuses:
            func = document_response(ErrorResponse, status)(func)
        return func

    return decorate


@blueprint.get("/healthz")
@validate_response(HealthResponse)
async def healthz() -> HealthResponse:
    """Liveness: answers without touching upstream."""
    return HealthResponse(status="ok")


@blueprint.post("/token")
@validate_request(TokenRequest)
@validate_response(TokenResponse)
@errors_documented(400, 413, 502, 503, 504)
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
