"""Every error leaves as JSON: our own errors with their status and code, a body that fails
validation as a 400 naming the field, HTTP errors in the same shape, anything else as a logged
500 with no details."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError
from quart import request
from quart_schema import RequestSchemaValidationError
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from .._errors import RateLimited, RealtimeTrioError, Unauthorized

logger = logging.getLogger("realtime_trio.app")

JSONAnswer = tuple[dict[str, Any], int]


def register_error_handlers(app: QuartTrio) -> None:
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
