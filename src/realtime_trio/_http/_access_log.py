"""One log line per HTTP request: method, path, status and duration in milliseconds.

An ASGI middleware rather than a request hook, so it also times requests that end in an error
handler, a 413 raised while reading the body, or a routing miss.
"""

from __future__ import annotations

import logging
import time

from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGISendCallable,
    ASGISendEvent,
    Scope,
)

logger = logging.getLogger("realtime_trio.access")


class AccessLogMiddleware:
    """Wraps an ASGI app; logs `POST /token 200 12.3ms` with the fields also set on the record."""

    def __init__(self, app: ASGIFramework) -> None:
        self.app = app

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: int | None = None
        logged = False

        def log() -> None:
            nonlocal logged
            logged = True
            duration_ms = (time.perf_counter() - started) * 1000
            method, path = scope["method"], scope["path"]
            logger.info(
                "%s %s %s %.1fms",
                method,
                path,
                status if status is not None else "-",
                duration_ms,
                extra={
                    "http_method": method,
                    "http_path": path,
                    "http_status": status,
                    "duration_ms": round(duration_ms, 3),
                },
            )

        async def send_and_log(message: ASGISendEvent) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # Logged before the last byte leaves, so the line exists once a client has
                # the whole answer.
                log()
            await send(message)

        try:
            await self.app(scope, receive, send_and_log)
        finally:
            if not logged:
                log()
