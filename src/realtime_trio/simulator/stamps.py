"""When the simulator got each REST request and when it had answered, at the edges of its app.

Benchmarks subtract the simulator's own time on a request from the server's round trip to it.
Stamped inside Quart (`before_request`, `after_request`), that time would leave out what Quart
spends setting up the request and sending the answer, and the bench would count it as the
server's. `stamp_requests` wraps the ASGI app: a request is stamped when the app is called and
answered when the last chunk of its body is handed to the HTTP server.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, cast

from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, ASGISendEvent, Scope

from .state import RecordedRequest
from .wire import ASGIApp

SCOPE_KEY = "realtime_trio.simulator.stamps"


@dataclass
class RequestStamps:
    """The edges of one request; `recorded` is its entry in the simulator's log, if any."""

    received_at: float
    recorded: RecordedRequest | None = None


def stamps_of(scope: Any) -> RequestStamps | None:
    stamps = scope.get(SCOPE_KEY)
    return stamps if isinstance(stamps, RequestStamps) else None


def stamp_requests(app: ASGIApp) -> ASGIApp:
    """*app* with `RequestStamps` in the scope of every HTTP request."""

    async def stamped(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope.get("type") != "http":
            await app(scope, receive, send)
            return
        stamps = RequestStamps(received_at=time.monotonic())
        # ASGI lets middleware add keys to a scope; Hypercorn's TypedDicts declare none
        cast(dict[str, Any], scope)[SCOPE_KEY] = stamps

        async def send_and_stamp(message: ASGISendEvent) -> None:
            # Stamped before the send: once the last chunk is written, Quart-Trio may cancel
            # the request's task (the connection reports the exchange over) before it returns.
            last = message.get("type") == "http.response.body" and not message.get("more_body")
            if last and stamps.recorded is not None:
                stamps.recorded.answered_at = time.monotonic()
            await send(message)

        await app(scope, receive, send_and_stamp)

    return stamped
