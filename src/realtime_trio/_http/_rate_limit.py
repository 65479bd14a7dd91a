"""Per-client rate limits: one token bucket per client on the paths that spend OpenAI money.

A client is its API key when it sent a valid one (the key is whom the operator let in; an
address may stand for everyone behind one NAT or proxy), else its address. Only a digest of
the key is kept: the table, and any log line naming a client, never hold a key.

The table is bounded. A bucket untouched for as long as an empty one takes to refill is full
again and says nothing a fresh bucket would not, so it is dropped; beyond `max_clients` the
least recently seen client is dropped too (it then starts again with a full bucket, which is
the price of not letting a flood of addresses grow memory without bound).
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import final

import trio

from ._client_auth import bearer_token

logger = logging.getLogger("realtime_trio.rate_limit")

# The paths that mint secrets or call the Responses API; POST only.
LIMITED_PATHS = frozenset({"/token", "/session", "/session/renew", "/extract-profile"})
DEFAULT_MAX_CLIENTS = 100_000
# A client refused again and again is logged at most once in this many seconds.
LOG_QUIET_SECONDS = 60.0
# Rounding slack: a client that waits exactly the time it was told gets its token.
_EPSILON = 1e-9


def is_limited(method: str, path: str) -> bool:
    """Whether a request counts against its client's bucket."""
    return method == "POST" and path in LIMITED_PATHS


def client_identity(
    *,
    authorization: str | None,
    keyed: bool,
    remote_addr: str | None,
    forwarded_for: Sequence[str],
    trust_forwarded_for: bool,
) -> str:
    """`key:<digest>` for a client that sent a valid key, else `addr:<address>`.

    *keyed*: `SERVER_API_KEYS` is set, so the bearer token (checked before this runs) is one
    of them; without keys a bearer token is anyone's choice and buys no bucket of its own.
    *forwarded_for*: the `X-Forwarded-For` header lines; only with *trust_forwarded_for* is
    its last address (the one our proxy appended; the ones before it are the client's say)
    taken instead of the connecting address.
    """
    if keyed and (token := bearer_token(authorization)) is not None:
        return "key:" + hashlib.sha256(token.encode()).hexdigest()[:16]
    if trust_forwarded_for:
        hops = [hop.strip() for line in forwarded_for for hop in line.split(",")]
        if hops and hops[-1]:
            return f"addr:{hops[-1]}"
    return f"addr:{remote_addr or 'unknown'}"


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float
    quiet_until: float = float("-inf")


@final
class RateLimiter:
    """A token bucket per client: *burst* requests at once, then *per_minute* a minute.

    Args:
        per_minute: the refill rate, in requests a minute (more than 0).
        burst: the bucket's capacity; 0 means *per_minute*.
        max_clients: the most buckets kept at once.
        clock: seconds, monotonic; Trio's clock by default, so it runs inside `trio.run`.
    """

    def __init__(
        self,
        *,
        per_minute: int,
        burst: int = 0,
        max_clients: int = DEFAULT_MAX_CLIENTS,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be more than 0")
        self.per_minute = per_minute
        self.capacity = burst or per_minute
        self.max_clients = max_clients
        self._clock = clock
        # Seconds an empty bucket takes to fill: a bucket untouched this long is full.
        self._fill_seconds = self.capacity * 60 / per_minute
        # Least recently seen first, so both sweeping and eviction take from the front.
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        """How many clients have a bucket now."""
        return len(self._buckets)

    def check(self, identity: str) -> float | None:
        """Take one token from *identity*'s bucket: `None` when the request may pass, else the
        seconds until it would. A refused request takes nothing, so the answer is exact."""
        now = self._clock()
        self._sweep(now)
        bucket = self._refilled(identity, now)
        if bucket.tokens >= 1 - _EPSILON:
            bucket.tokens = max(0.0, bucket.tokens - 1)
            return None
        if now >= bucket.quiet_until:
            bucket.quiet_until = now + LOG_QUIET_SECONDS
            logger.info(
                "rate limit: refusing %s (over %d requests a minute, burst %d); "
                "its further refusals stay quiet for %.0f s",
                identity,
                self.per_minute,
                self.capacity,
                LOG_QUIET_SECONDS,
            )
        return (1 - bucket.tokens) * 60 / self.per_minute

    def _refilled(self, identity: str, now: float) -> _Bucket:
        """*identity*'s bucket topped up to *now*, moved to the most recently seen end (a new
        one, full, for a client not in the table, dropping the least recent beyond the cap)."""
        bucket = self._buckets.pop(identity, None)
        if bucket is None:
            bucket = _Bucket(tokens=self.capacity, updated=now)
        else:
            refill = (now - bucket.updated) * self.per_minute / 60
            bucket.tokens = min(self.capacity, bucket.tokens + refill)
            bucket.updated = now
        self._buckets[identity] = bucket
        if len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return bucket

    def _sweep(self, now: float) -> None:
        """Drop the buckets that have refilled to full (oldest first; stops at the first that
        may not have)."""
        buckets = self._buckets
        while buckets:
            oldest = next(iter(buckets.values()))
            if now - oldest.updated < self._fill_seconds:
                return
            buckets.popitem(last=False)
