"""CORS, for browsers only (`CORS_ALLOW_ORIGINS`); the mobile apps need none of it."""

from __future__ import annotations

from collections.abc import Sequence

from quart_cors import cors
from quart_trio import QuartTrio

CORS_MAX_AGE_SECONDS = 600


def allow_browsers(app: QuartTrio, origins: Sequence[str]) -> None:
    """Let browsers on *origins* (`*`: any) call the API.

    Preflights carry no credentials and pass the API-key check; what they allow is exactly the
    API's methods and headers. A page may read the answers' `X-Request-Id` (to quote it in a
    bug report) and `Retry-After`.
    """
    cors(
        app,
        allow_origin="*" if "*" in origins else list(origins),
        allow_headers=["Authorization", "Content-Type", "X-Request-Id"],
        expose_headers=["X-Request-Id", "Retry-After"],
        allow_methods=["GET", "POST", "DELETE"],
        max_age=CORS_MAX_AGE_SECONDS,
    )
