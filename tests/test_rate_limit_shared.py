"""Rate-limit buckets in Valkey: shared by every replica, refilled on the store's clock, and
gone once full again."""

from __future__ import annotations

import uuid

import trio

from realtime_trio._store_url import parse_store_url
from realtime_trio._valkey._client import open_valkey
from realtime_trio._valkey._rate_limit import ValkeyRateLimiter


async def test_replicas_share_one_bucket_per_client(valkey_url: str) -> None:
    url, prefix = parse_store_url(valkey_url), f"test:{uuid.uuid4().hex}:"
    async with open_valkey(url) as one, open_valkey(url) as other:
        a = ValkeyRateLimiter(one, prefix, per_minute=60, burst=3)
        b = ValkeyRateLimiter(other, prefix, per_minute=60, burst=3)

        passed = [await limiter.check("addr:10.0.0.1") for limiter in (a, b, a)]
        refused = await b.check("addr:10.0.0.1")

        assert passed == [None, None, None]
        assert refused is not None
        assert 0.9 <= refused <= 1.0  # one token a second
        assert await a.check("addr:10.0.0.2") is None  # another client, its own bucket


async def test_a_bucket_refills_at_its_rate_and_then_leaves_no_key(valkey_url: str) -> None:
    url, prefix = parse_store_url(valkey_url), f"test:{uuid.uuid4().hex}:"
    async with open_valkey(url) as client:
        limiter = ValkeyRateLimiter(client, prefix, per_minute=600, burst=1)  # 10 a second
        assert await limiter.check("key:abc") is None
        wait = await limiter.check("key:abc")
        assert wait is not None
        assert 0.05 <= wait <= 0.1
        await trio.sleep(wait + 0.02)
        assert await limiter.check("key:abc") is None

        await trio.sleep(0.15)  # full again: the key has expired
        assert await client.exists([f"{prefix}rate:key:abc"]) == 0
