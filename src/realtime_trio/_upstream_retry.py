"""Retries of one upstream HTTP request: which failures earn another try, and how long to wait.

A connection error, a 429 or a 5xx is tried again, up to `UPSTREAM_RETRY_ATTEMPTS` more times.
The wait is what upstream asked for (`retry-after-ms`, else `Retry-After`), else an exponential,
jittered backoff. Any other 4xx is final, and so is a timeout: that request may have reached
upstream and been billed. All attempts and waits of one request fit in
`UPSTREAM_RETRY_TOTAL_SECONDS`: a wait that would end past it is not waited, and the last failure
is final at once.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from http import HTTPStatus

import trio
from tenacity import (
    AsyncRetrying,
    Future,
    RetryCallState,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    stop_any,
)
from tenacity.stop import stop_base

from ._config import Settings
from ._errors import UpstreamUnreachable
from ._upstream_http import Answer

logger = logging.getLogger("realtime_trio.upstream_retry")

Send = Callable[[float], Awaitable[Answer]]

# Past this many doublings every delay is the cap anyway; it keeps 2**n a small float.
_MAX_DOUBLINGS = 32


@dataclass(frozen=True)
class RetryPolicy:
    """How one upstream request is retried; `from_settings` reads the `UPSTREAM_*` settings."""

    retries: int
    backoff_seconds: float
    max_backoff_seconds: float
    total_seconds: float
    attempt_timeout_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            retries=settings.upstream_retry_attempts,
            backoff_seconds=settings.upstream_retry_backoff_seconds,
            max_backoff_seconds=settings.upstream_retry_max_backoff_seconds,
            total_seconds=settings.upstream_retry_total_seconds,
            attempt_timeout_seconds=settings.upstream_timeout_seconds,
        )

    def backoff(self, retry: int) -> float:
        """The delay before retry number *retry* (1 for the first): doubling, capped, jittered.

        The jitter keeps half the delay, so replicas that failed together do not retry together
        yet none retries at once (as the sideband's reconnects do).
        """
        doublings = min(retry - 1, _MAX_DOUBLINGS)
        ceiling = min(self.max_backoff_seconds, self.backoff_seconds * 2.0**doublings)
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not security


async def send_with_retries(send: Send, policy: RetryPolicy, *, path: str) -> Answer:
    """Call `send(timeout)` until its answer is final, and return that answer.

    *send* makes one attempt within `timeout` seconds (the attempt timeout, or less when less of
    the total is left) and returns the response whatever its status. When retries or time run out
    on a 429 or 5xx, that last response is returned as it is, for the caller to turn into an error.

    Raises:
        UpstreamUnreachable: the last attempt found no connection.
        UpstreamError: anything else *send* raised (a timeout, say), at once.
    """
    deadline = trio.current_time() + policy.total_seconds

    async def attempt() -> Answer:
        left = deadline - trio.current_time()
        return await send(max(0.0, min(policy.attempt_timeout_seconds, left)))

    # The usual case, an answer that is final at the first attempt, costs no retry machinery;
    # otherwise that first outcome is handed to it as its own first attempt, not sent again.
    first: Answer | UpstreamUnreachable | None
    try:
        first = await attempt()
    except UpstreamUnreachable as exc:
        first = exc
    else:
        if not should_retry(first):
            return first

    async def first_then_attempts() -> Answer:
        nonlocal first
        replayed, first = first, None
        if isinstance(replayed, UpstreamUnreachable):
            raise replayed
        return replayed if replayed is not None else await attempt()

    retrying = AsyncRetrying(
        sleep=trio.sleep,  # tenacity would find it through sniffio; saying so costs nothing
        retry=retry_if_exception_type(UpstreamUnreachable) | retry_if_result(should_retry),
        wait=lambda state: _wait(policy, state),
        stop=stop_any(stop_after_attempt(1 + policy.retries), _PastDeadline(deadline)),
        before_sleep=lambda state: _log_retry(path, policy, state),
        retry_error_callback=_last_outcome,
    )
    response: Answer = await retrying(first_then_attempts)
    return response


class _PastDeadline(stop_base):
    """Stop when the next wait would end past *deadline* (Trio's clock)."""

    def __init__(self, deadline: float) -> None:
        self._deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        return trio.current_time() + retry_state.upcoming_sleep >= self._deadline


def retry_after_seconds(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """The wait upstream asked for, or None when it asked for none we can read.

    OpenAI's `retry-after-ms` wins; else `Retry-After` in seconds or as an HTTP date (compared
    with *now*, wall-clock seconds, by default the current time).
    """
    millis = _non_negative(headers.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000
    raw = headers.get("retry-after")
    if raw is None:
        return None
    seconds = _non_negative(raw)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def should_retry(response: Answer) -> bool:
    """A 5xx or a 429, unless upstream says no retry can help: `x-should-retry: false`, or a
    429 for an exhausted quota (which only billing changes)."""
    if response.headers.get("x-should-retry", "").lower() == "false":
        return False
    if response.status_code >= 500:
        return True
    return response.status_code == 429 and _error_code(response) != "insufficient_quota"


def _error_code(response: Answer) -> object:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return None
    return error.get("code") if isinstance(error, dict) else None


def _wait(policy: RetryPolicy, state: RetryCallState) -> float:
    outcome = _outcome(state)
    if not outcome.failed:
        asked = retry_after_seconds(outcome.result().headers)
        if asked is not None:
            return asked
    return policy.backoff(state.attempt_number)


def _log_retry(path: str, policy: RetryPolicy, state: RetryCallState) -> None:
    outcome = _outcome(state)
    if outcome.failed:
        reason = str(outcome.exception())  # an UpstreamUnreachable: already redacted
    else:
        response: Answer = outcome.result()
        request_id = response.headers.get("x-request-id", "-")
        phrase = _reason_phrase(response.status_code)
        reason = f"answered {response.status_code} {phrase} (request {request_id})"
    logger.warning(
        "upstream POST %s attempt %d of %d: %s; retrying in %.2fs",
        path,
        state.attempt_number,
        1 + policy.retries,
        reason,
        state.upcoming_sleep,
    )


def _last_outcome(state: RetryCallState) -> Answer:
    """When retrying stops: the last response, or the last error raised again."""
    response: Answer = _outcome(state).result()
    return response


def _reason_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _outcome(state: RetryCallState) -> Future:
    if state.outcome is None:  # tenacity waits, stops and logs only after an attempt
        raise RuntimeError("no attempt made yet")
    return state.outcome


def _non_negative(raw: str | None) -> float | None:
    try:
        value = float(raw) if raw is not None else math.nan
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None
