"""The app factory: settings and an upstream client in, a Quart-Trio ASGI app out."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

import trio
from quart import Response, request
from quart.json.provider import DefaultJSONProvider
from quart_schema import QuartSchema
from quart_trio import QuartTrio

from .._config import Settings
from .._errors import RateLimited, StoreUnavailable
from .._replica import Replica
from .._sessions import SessionManager
from .._upstream import OpenAIClient
from .._version import __version__
from . import _handlers as api
from ._access_log import ROUTE_SCOPE_KEY, AccessLogMiddleware
from ._client_auth import authorize
from ._cors import allow_browsers
from ._error_handlers import register_error_handlers
from ._inspector import inspector_blueprint
from ._json import FastJSONProvider
from ._metrics_route import metrics_blueprint
from ._rate_limit import RateLimiter, client_identity, is_limited
from ._request import ApiRequest
from ._schema import dumping_models
from ._services import EXTENSION_KEY, Services

if TYPE_CHECKING:
    from .._mcp._servers import McpServers

logger = logging.getLogger("realtime_trio.rate_limit")


def create_app(
    settings: Settings,
    *,
    upstream: OpenAIClient,
    sessions: SessionManager,
    mcp: McpServers | None = None,
) -> QuartTrio:
    """Build the HTTP app.

    Args:
        settings: the server's settings.
        upstream: the client for OpenAI's REST API; the caller opens and closes it.
        sessions: the session manager; the caller runs it (`SessionManager.run`).
        mcp: the MCP servers' clients, for their states in `GET /tools`; the caller runs them.
    """
    app = QuartTrio(__name__)
    app.request_class = ApiRequest
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_body_bytes
    make_response = app.make_response
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
    app.make_response = dumping_models(make_response)  # type: ignore[method-assign,assignment]
    if isinstance(app.json, DefaultJSONProvider):  # quart-schema's, kept as the fallback
        app.json = FastJSONProvider(app, app.json)

    app.extensions[EXTENSION_KEY] = Services(
        settings=settings, upstream=upstream, sessions=sessions, mcp=mcp
    )
    app.register_blueprint(api.blueprint)
    keys = settings.client_api_keys()

    @app.before_request
    async def require_api_key() -> None:
        authorize(request.method, request.path, request.headers.get("Authorization"), keys)

    if settings.rate_limit_per_minute > 0:
        _limit_rate(
            app,
            _rate_check(settings, sessions.replica),
            keyed=bool(keys),
            trust_forwarded_for=settings.trust_x_forwarded_for,
        )
    if sessions.metrics is not None:
        _note_routes(app)
        if settings.metrics_enabled:
            app.register_blueprint(metrics_blueprint(sessions.metrics, before=sessions.count_usage))
    if settings.inspector_enabled:
        app.register_blueprint(inspector_blueprint())
    if origins := settings.cors_origins():
        allow_browsers(app, origins)
    register_error_handlers(app)
    # Quart's documented way to wrap its ASGI app; mypy sees a method being replaced.
    app.asgi_app = AccessLogMiddleware(  # type: ignore[method-assign]
        app.asgi_app, metrics=sessions.metrics
    )
    return app


def _note_routes(app: QuartTrio) -> None:
    """Leave each request's route pattern in its ASGI scope, where the access log counts the
    request (`/session/{session_id}`, never the raw path)."""

    @app.after_request
    async def note_route(response: Response) -> Response:
        rule = request.url_rule
        if rule is not None:
            cast(dict[str, Any], request.scope)[ROUTE_SCOPE_KEY] = rule.rule
        return response


RateCheck = Callable[[str], Awaitable[float | None]]
# The longest a shared rate-limit check may add to a request while the store is slow.
SHARED_CHECK_SECONDS = 0.5


def _rate_check(settings: Settings, replica: Replica | None) -> RateCheck:
    """Each client's bucket: in this process, or shared by every replica in the store. When
    the store is away, requests pass (minting needs no store; refusing everyone would be worse
    than a short while without limits)."""
    per_minute, burst = settings.rate_limit_per_minute, settings.rate_limit_burst
    if replica is None:
        local = RateLimiter(per_minute=per_minute, burst=burst)

        async def check_here(identity: str) -> float | None:
            return local.check(identity)

        return check_here
    shared = replica.tables.rate_limiter(per_minute, burst)

    async def check_shared(identity: str) -> float | None:
        if replica.store_reachable:
            with trio.move_on_after(SHARED_CHECK_SECONDS):
                try:
                    return await replica.call(shared.check(identity))
                except StoreUnavailable:
                    pass
        logger.debug("rate limit not checked: the session store is unavailable")
        return None

    return check_shared


def _limit_rate(
    app: QuartTrio, check: RateCheck, *, keyed: bool, trust_forwarded_for: bool
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
        retry_after = await check(identity)
        if retry_after is not None:
            raise RateLimited(retry_after)
