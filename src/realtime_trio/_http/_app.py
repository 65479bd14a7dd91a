"""The app factory: settings and an upstream client in, a Quart-Trio ASGI app out."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError
from quart import request
from quart_cors import cors
from quart_schema import QuartSchema, RequestSchemaValidationError
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from .._config import Settings
from .._errors import RateLimited, RealtimeTrioError, Unauthorized
from .._sessions import SessionManager
from .._upstream import OpenAIClient
from .._version import __version__
from . import _handlers as api
from ._access_log import AccessLogMiddleware
from ._client_auth import authorize
from ._rate_limit import RateLimiter, client_identity, is_limited
from ._request import ApiRequest
from ._services import EXTENSION_KEY, Services

logger = logging.getLogger("realtime_trio.app")

CORS_MAX_AGE_SECONDS = 600

JSONAnswer = tuple[dict[str, Any], int]


def create_app(
    settings: Settings, *, upstream: OpenAIClient, sessions: SessionManager
) -> QuartTrio:
    """Build the HTTP app.

    Args:
        settings: the server's settings.
        upstream: the client for OpenAI's REST API; the caller opens and closes it.
        sessions: the session manager; the caller runs it (`SessionManager.run`).
    """
    app = QuartTrio(__name__)
    app.request_class = ApiRequest
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_body_bytes
    QuartSchema(
        app,
        info={"title": "realtime-trio", "version": __version__},
        openapi_path="/openapi.json",
        swagger_ui_path="/docs",
        redoc_ui_path=None,
        scalar_ui_path=None,
        # exclude_unset: optional keys a handler did not set stay out (`callId` of /session).
        pydantic_dump_options={"by_alias": True, "exclude_unset": True},
    )

    app.extensions[EXTENSION_KEY] = Services(
        settings=settings, upstream=upstream, sessions=sessions
    )
    app.register_blueprint(api.blueprint)
    keys = settings.client_api_keys()

    @app.before_request
    async def require_api_key() -> None:
        authorize(request.method, request.path, request.headers.get("Authorization"), keys)

    if settings.rate_limit_per_minute > 0:
        limiter = RateLimiter(
            per_minute=settings.rate_limit_per_minute, burst=settings.rate_limit_burst
        )
        _limit_rate(
            app, limiter, keyed=bool(keys), trust_forwarded_for=settings.trust_x_forwarded_for
        )
    if origins := settings.cors_origins():
        # Browsers only; the mobile apps need none of it. Preflights carry no credentials and
        # pass the API-key check; what they allow is exactly the API's methods and headers.
        cors(
            app,
            allow_origin="*" if "*" in origins else list(origins),
            allow_headers=["Authorization", "Content-Type"],
            allow_methods=["GET", "POST", "DELETE"],
            max_age=CORS_MAX_AGE_SECONDS,
        )
    _register_error_handlers(app)
    # Quart's documented way to wrap its ASGI app; mypy sees a method being replaced.
    app.asgi_app = AccessLogMiddleware(app.asgi_app)  # type: ignore[method-assign]
    return app


def _limit_rate(
    app: QuartTrio, limiter: RateLimiter, *, keyed: bool, trust_forwarded_for: bool
) -> None:
    """Refuse a client over its rate with 429 before any handler runs (so before upstream).

    Registered after the key check: with `SERVER_API_KEYS` set, a key seen here is valid.
    """

    @app.before_request
    async def limit_rate() -> None:
        if not is_limited(request.method, request.path):
            return
        identity = client_identity(
            authorization=request.headers.get("Authorization"),
            keyed=keyed,
            remote_addr=request.remote_addr,
            forwarded_for=request.headers.getlist("X-Forwarded-For"),
            trust_forwarded_for=trust_forwarded_for,
        )
        retry_after = limiter.check(identity)
        if retry_after is not None:
            raise RateLimited(retry_after)


def _register_error_handlers(app: QuartTrio) -> None:
    """Every error leaves as JSON `{"error": str, "code": str}`; none as a traceback."""

    @app.errorhandler(RealtimeTrioError)
    async def our_error(exc: RealtimeTrioError) -> Any:
        if isinstance(exc, Unauthorized):
            return exc.body(), exc.status, {"WWW-Authenticate": "Bearer"}
        if isinstance(exc, RateLimited):
            return exc.body(), exc.status, {"Retry-After": str(exc.retry_after)}
        return exc.body(), exc.status

    @app.errorhandler(RequestSchemaValidationError)
    async def invalid_body(exc: RequestSchemaValidationError) -> JSONAnswer:
        return _describe_invalid_body(exc.validation_error), 400

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> JSONAnswer:
        status = exc.code or 500
        if status == 404:
            message = f"Not found: {request.method} {request.path}"
        elif status == 405:
            message = f"Method {request.method} is not allowed on {request.path}"
        elif status == 413:
            limit = app.config["MAX_CONTENT_LENGTH"]
            message = f"Request body is larger than the limit of {limit} bytes"
        else:
            message = exc.description or exc.name
        code = (exc.name or "error").lower().replace(" ", "_")
        return {"error": message, "code": code}, status

    @app.errorhandler(Exception)
    async def unexpected(exc: Exception) -> JSONAnswer:
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return {"error": "Internal server error", "code": "internal_error"}, 500


def _describe_invalid_body(error: Exception) -> dict[str, Any]:
    """A 400 body naming the first field at fault, in the request's own (camelCase) names."""
    if not isinstance(error, ValidationError) or not error.errors():
        return {"error": f"Invalid request body: {error}", "code": "invalid_request"}
    first = error.errors()[0]
    path = ".".join(str(part) for part in first["loc"])
    if not path:
        return {"error": "Request body must be a JSON object", "code": "invalid_request"}
    return {
        "error": f"Invalid field '{path}': {first['msg']}",
        "code": "invalid_request",
        "field": path,
    }
