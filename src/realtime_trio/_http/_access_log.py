"""One log line per HTTP request (method, path, status and duration in milliseconds), and the
request's id (`X-Request-Id`).

An ASGI middleware rather than a request hook, so it also times requests that end in an error
handler, a 413 raised while reading the body, or a routing miss, and every answer carries the id.

The id is the client's own `X-Request-Id` when it is sane (up to 128 letters, digits and
`._:-`: it goes into log lines and a response header), else a new one. It is bound for the
request's tasks (`_log_context`), so JSON log lines logged while serving it carry it.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import time
from collections.abc import Iterable
from typing import Any, cast

from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGISendCallable,
    ASGISendEvent,
    HTTPResponseStartEvent,
    Scope,
)

from .._log_context import bind_log_fields, unbind_log_fields
from .._metrics import Metrics

logger = logging.getLogger("realtime_trio.access")

REQUEST_ID_HEADER = b"x-request-id"
_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


def request_id(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The client's `X-Request-Id` among the ASGI *headers* if it is sane, else a new one (32
    hex digits)."""
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            if _SANE_REQUEST_ID.fullmatch(value):
                return value.decode("ascii")
            break
    return os.urandom(16).hex()


# Where the app leaves a request's route rule (`/session/<session_id>`) in its ASGI scope.
ROUTE_SCOPE_KEY = "realtime_trio.route"
_ROUTE_PARAMETER = re.compile(r"<(?:[a-z_]+:)?([A-Za-z_]+)>")


@functools.lru_cache(maxsize=256)
def route_pattern(rule: str) -> str:
    """A route rule as the metrics name it: `/session/<session_id>` -> `/session/{session_id}`."""
    return _ROUTE_PARAMETER.sub(r"{\1}", rule)


class AccessLogMiddleware:
    """Wraps an ASGI app; logs `POST /token 200 12.3ms` with the fields (`method`, `path`,
    `status`, `duration_ms`, `request_id`) also set on the record, counts the request in
    *metrics* by its route pattern with the same duration, and answers every request with its
    `X-Request-Id`."""

    def __init__(self, app: ASGIFramework, *, metrics: Metrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: int | None = None
        logged = False
        rid = request_id(scope["headers"])
        rid_header = (REQUEST_ID_HEADER, rid.encode())

        def log() -> None:
            nonlocal logged
            logged = True
            seconds = time.perf_counter() - started
            duration_ms = seconds * 1000
            method, path = scope["method"], scope["path"]
            if self.metrics is not None and status is not None:
                rule = cast(dict[str, Any], scope).get(ROUTE_SCOPE_KEY)
                route = route_pattern(rule) if rule is not None else "unmatched"
                self.metrics.request(method, route, status, seconds)
            logger.info(
                "%s %s %s %.1fms",
                method,
                path,
                status if status is not None else "-",
                duration_ms,
                extra={
                    "method": method,
                    "path": path,
                    "status": status,
                    "duration_ms": round(duration_ms, 3),
                    "request_id": rid,
                },
            )

        async def send_and_log(message: ASGISendEvent) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = cast(
                    HTTPResponseStartEvent,
                    {**message, "headers": [*message.get("headers", ()), rid_header]},
                )
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # Logged before the last byte leaves, so the line exists once a client has
                # the whole answer.
                log()
            await send(message)

        token = bind_log_fields(request_id=rid)
        try:
            await self.app(scope, receive, send_and_log)
        finally:
            if not logged:
                log()
            unbind_log_fields(token)
