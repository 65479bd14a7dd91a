"""Rate-limit buckets shared by every replica: the same token bucket as `RateLimiter`, one Lua
script per request on the store's clock (replicas' clocks never meet in it).

Keys, under the prefix: `rate:{identity}`, a hash of `tokens` and `updated` (milliseconds of
the store's clock) that expires once an empty bucket would be full again, so an idle client
leaves nothing behind.
"""

from __future__ import annotations

from glide import GlideClient

from ._scripts import make_script

# KEYS: the bucket. ARGV: capacity, per minute. Answers 0 (taken) or the milliseconds to wait.
_TAKE = make_script(
    """
    local capacity, per_minute = tonumber(ARGV[1]), tonumber(ARGV[2])
    local clock = redis.call('TIME')
    local now = clock[1] * 1000 + math.floor(clock[2] / 1000)
    local tokens, updated = capacity, now
    local kept = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
    if kept[1] then
        local refill = (now - tonumber(kept[2])) * per_minute / 60000
        tokens = math.min(capacity, tonumber(kept[1]) + refill)
    end
    local wait = 0
    if tokens >= 1 - 1e-9 then
        tokens = math.max(0, tokens - 1)
    else
        wait = math.ceil((1 - tokens) * 60000 / per_minute)
    end
    redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now))
    redis.call('PEXPIRE', KEYS[1], math.ceil(capacity * 60000 / per_minute))
    return wait
    """
)


class ValkeyRateLimiter:
    """*burst* requests at once, then *per_minute* a minute, per client, across replicas."""

    def __init__(self, client: GlideClient, prefix: str, *, per_minute: int, burst: int = 0):
        if per_minute <= 0:
            raise ValueError("per_minute must be more than 0")
        self._client = client
        self._prefix = prefix
        self.per_minute = per_minute
        self.capacity = burst or per_minute

    async def check(self, identity: str) -> float | None:
        """Take one token from *identity*'s bucket: None when the request may pass, else the
        seconds until it would (a refused request takes nothing)."""
        wait = await self._client.invoke_script(
            _TAKE,
            keys=[f"{self._prefix}rate:{identity}"],
            args=[str(self.capacity), str(self.per_minute)],
        )
        if not isinstance(wait, int) or wait <= 0:
            return None
        return wait / 1000
