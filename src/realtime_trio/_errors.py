"""The package's exceptions. Each one knows the HTTP answer it becomes.

    RealtimeTrioError                 status  code
     +-- BadRequest                     400   invalid_request (names the field)
     |    +-- InvalidJSON               400   invalid_json
     |    +-- MissingField              400   missing_field ("sessionId is required")
     +-- Unauthorized                   401   unauthorized
     +-- NotFound                       404   not_found
     |    +-- UnknownSession            404   unknown_session ("Unknown sessionId")
     +-- RenewInProgress                429   renew_in_progress
     +-- RateLimited                    429   rate_limited (with Retry-After)
     +-- SessionLimitReached            503   session_limit
     +-- ShuttingDown                   503   shutting_down
     +-- StoreUnavailable               503   store_unavailable
     +-- SessionMoving                  503   session_moving (its holder did not hand it over)
     +-- UpstreamError                  502   upstream_error
          +-- UpstreamNotConfigured     503   not_configured
          +-- UpstreamUnreachable       502   upstream_unreachable
          +-- UpstreamTimeout           504   upstream_timeout
          +-- UpstreamStatusError       502   upstream_error (carries upstream's status and message)
          +-- UpstreamBadResponse       502   upstream_bad_response

Messages are written for people and never contain the API key: anything that came from
upstream passes through `redact()` before it is kept.
"""

from __future__ import annotations

import math
import re
from typing import Any, ClassVar

_KEY_LIKE = re.compile(r"\b(?P<kind>sk|rk|ek)[-_](?P<rest>[A-Za-z0-9*_.\-]{8,})")


def redact(text: str, *secrets: str | None) -> str:
    """*text* with every given secret, and anything shaped like an OpenAI key, masked.

    Standard keys vanish entirely (`sk-***`); ephemeral client secrets keep a short prefix
    (`ek_68af…`) so a log reader can still tell two of them apart.
    """
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, "[redacted]")
    # Every key shape has "k-" or "k_" in it: most lines have neither and skip the pattern.
    if "k-" not in text and "k_" not in text:
        return text
    return _KEY_LIKE.sub(_mask, text)


def secret_prefix(value: str) -> str:
    """What may be shown of an ephemeral client secret: `ek_` and four characters."""
    return value[:7] + "…"


def _mask(match: re.Match[str]) -> str:
    if match["kind"] == "ek":
        return secret_prefix(match[0])
    return f"{match['kind']}-***"


class RealtimeTrioError(Exception):
    """Base of every error this package raises on purpose."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """The JSON error body: `error` stays a string, as the original's clients read it."""
        return {"error": self.message, "code": self.code, **self.extra}


class BadRequest(RealtimeTrioError):
    status = 400
    code = "invalid_request"


class InvalidJSON(BadRequest):
    code = "invalid_json"


class MissingField(BadRequest):
    code = "missing_field"


class Unauthorized(RealtimeTrioError):
    """No valid `Authorization: Bearer <key>` where `SERVER_API_KEYS` asks for one."""

    status = 401
    code = "unauthorized"


class NotFound(RealtimeTrioError):
    status = 404
    code = "not_found"


class UnknownSession(NotFound):
    code = "unknown_session"

    def __init__(self) -> None:
        super().__init__("Unknown sessionId")


class RenewInProgress(RealtimeTrioError):
    status = 429
    code = "renew_in_progress"

    def __init__(self) -> None:
        super().__init__("Renew already in progress")


class RateLimited(RealtimeTrioError):
    """A client went over `RATE_LIMIT_PER_MINUTE`; `retry_after` is the whole seconds (at
    least 1) until its next request passes, for the `Retry-After` header and the body."""

    status = 429
    code = "rate_limited"

    def __init__(self, retry_after_seconds: float) -> None:
        self.retry_after = max(1, math.ceil(retry_after_seconds))
        super().__init__(
            f"Too many requests: retry in {self.retry_after} seconds",
            retryAfterSeconds=self.retry_after,
        )


class UpstreamError(RealtimeTrioError):
    """The upstream (OpenAI, a proxy, the simulator) could not do what was asked."""

    status = 502
    code = "upstream_error"


class SessionLimitReached(RealtimeTrioError):
    """`MAX_SESSIONS` sessions are live on this server: a new one would go beyond it."""

    status = 503
    code = "session_limit"


class ShuttingDown(RealtimeTrioError):
    """The server is shutting down: it starts no new session."""

    status = 503
    code = "shutting_down"

    def __init__(self) -> None:
        super().__init__("The server is shutting down; try again in a moment")


class StoreUnavailable(RealtimeTrioError):
    """The shared store (`STORE_URL`) did not answer in time; live calls carry on."""

    status = 503
    code = "store_unavailable"

    def __init__(self, message: str = "The session store is unavailable; try again shortly"):
        super().__init__(message)


class SessionMoving(RealtimeTrioError):
    """Another replica holds the session's call and did not hand it over in time."""

    status = 503
    code = "session_moving"

    def __init__(self, message: str = "The session is moving between replicas; try again"):
        super().__init__(message)


class UpstreamNotConfigured(UpstreamError):
    status = 503
    code = "not_configured"


class UpstreamUnreachable(UpstreamError):
    code = "upstream_unreachable"


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


class UpstreamStatusError(UpstreamError):
    """Upstream answered with an error status; its status and message travel with it."""

    def __init__(
        self, message: str, *, upstream_status: int, upstream_code: str | None = None
    ) -> None:
        super().__init__(message, upstreamStatus=upstream_status, upstreamCode=upstream_code)
        self.upstream_status = upstream_status
        self.upstream_code = upstream_code


class UpstreamBadResponse(UpstreamError):
    code = "upstream_bad_response"
