"""RATE_LIMIT_PER_MINUTE / RATE_LIMIT_BURST: a token bucket per client on the paths that spend
OpenAI money, with 429 and `Retry-After` beyond it.

The bucket itself is tested on a fake clock; the rest over real sockets, with the simulator
as upstream.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from realtime_trio._http._rate_limit import RateLimiter, client_identity
from sim_client import SimControl

KEYS = "key-for-ios-0123456789,key-for-android-9876543210"
IOS, ANDROID = KEYS.split(",")
CLIENT_SECRETS = "/v1/realtime/client_secrets"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(per_minute: int, burst: int = 0, **options: Any) -> tuple[RateLimiter, FakeClock]:
    clock = FakeClock()
    return RateLimiter(per_minute=per_minute, burst=burst, clock=clock, **options), clock


def admitted(limiter: RateLimiter, identity: str, times: int) -> int:
    return sum(limiter.check(identity) is None for _ in range(times))


# The bucket, on a fake clock.


def test_a_client_gets_its_burst_at_once_then_is_refused() -> None:
    bucket, _ = limiter(per_minute=30, burst=10)

    assert admitted(bucket, "addr:a", 15) == 10


def test_burst_zero_means_the_per_minute_value() -> None:
    bucket, _ = limiter(per_minute=6)

    assert admitted(bucket, "addr:a", 10) == 6


def test_tokens_come_back_at_the_per_minute_rate() -> None:
    bucket, clock = limiter(per_minute=2, burst=2)
    admitted(bucket, "addr:a", 2)

    clock.now += 29
    refused_before = bucket.check("addr:a")
    clock.now += 1
    passes_after_30_seconds = bucket.check("addr:a")

    assert refused_before is not None
    assert passes_after_30_seconds is None


def test_the_refusal_says_how_long_until_the_next_token() -> None:
    bucket, clock = limiter(per_minute=2, burst=2)
    admitted(bucket, "addr:a", 2)

    right_away = bucket.check("addr:a")
    clock.now += 12
    twelve_seconds_later = bucket.check("addr:a")

    assert right_away == pytest.approx(30)
    assert twelve_seconds_later == pytest.approx(18)


@given(
    per_minute=st.integers(1, 600),
    burst=st.integers(0, 50),
    spent=st.integers(0, 60),
    waited=st.floats(0, 120, allow_nan=False),
)
def test_waiting_the_time_a_refusal_names_is_enough(
    per_minute: int, burst: int, spent: int, waited: float
) -> None:
    bucket, clock = limiter(per_minute=per_minute, burst=burst)
    admitted(bucket, "addr:a", spent)
    clock.now += waited

    while (retry_after := bucket.check("addr:a")) is None:
        pass
    clock.now += retry_after

    assert bucket.check("addr:a") is None


def test_a_bucket_never_holds_more_than_its_burst() -> None:
    bucket, clock = limiter(per_minute=60, burst=3)
    bucket.check("addr:a")

    clock.now += 3600

    assert admitted(bucket, "addr:a", 10) == 3


def test_clients_have_buckets_of_their_own() -> None:
    bucket, _ = limiter(per_minute=60, burst=2)
    admitted(bucket, "addr:a", 5)

    assert admitted(bucket, "addr:b", 5) == 2


def test_buckets_that_have_refilled_are_swept_away() -> None:
    bucket, clock = limiter(per_minute=60, burst=10)  # an empty bucket is full after 10 s
    for n in range(50):
        admitted(bucket, f"addr:{n}", 10)

    clock.now += 9
    bucket.check("addr:late")
    still_filling = len(bucket)
    clock.now += 1
    bucket.check("addr:later")

    assert still_filling == 51
    assert len(bucket) == 2  # the 50 full ones carry nothing a fresh bucket would not


def test_the_table_is_capped_by_dropping_the_least_recently_seen() -> None:
    bucket, clock = limiter(per_minute=1, burst=1, max_clients=3)
    for name in "abc":
        bucket.check(f"addr:{name}")
        clock.now += 1
    bucket.check("addr:a")  # seen again: now the most recent, and b the least

    bucket.check("addr:d")

    assert len(bucket) == 3
    # A remembered client is still out of tokens; a forgotten one starts over with a full bucket.
    assert bucket.check("addr:a") is not None
    assert bucket.check("addr:b") is None


@given(
    per_minute=st.integers(1, 600),
    burst=st.integers(0, 50),
    gaps=st.lists(st.floats(0, 30, allow_nan=False), min_size=1, max_size=100),
)
def test_no_window_admits_more_than_the_burst_plus_the_refill(
    per_minute: int, burst: int, gaps: list[float]
) -> None:
    bucket, clock = limiter(per_minute=per_minute, burst=burst)
    passed: list[float] = []
    for gap in gaps:
        clock.now += gap
        if bucket.check("addr:a") is None:
            passed.append(clock.now)

    capacity = burst or per_minute
    for i, start in enumerate(passed):
        for j in range(i, len(passed)):
            allowed = capacity + (passed[j] - start) * per_minute / 60
            assert j - i + 1 <= allowed + 1e-6


# Who a client is.


def identity(
    *,
    authorization: str | None = None,
    keyed: bool = False,
    forwarded_for: tuple[str, ...] = (),
    trust: bool = False,
) -> str:
    return client_identity(
        authorization=authorization,
        keyed=keyed,
        remote_addr="10.0.0.5",
        forwarded_for=forwarded_for,
        trust_forwarded_for=trust,
    )


def test_a_keyed_client_is_a_digest_of_its_key_never_the_key() -> None:
    ios = identity(authorization=f"Bearer {IOS}", keyed=True)

    assert ios.startswith("key:")
    assert IOS not in ios
    assert ios == identity(authorization=f"bearer  {IOS} ", keyed=True)
    assert ios != identity(authorization=f"Bearer {ANDROID}", keyed=True)


def test_without_server_keys_a_bearer_token_buys_no_bucket_of_its_own() -> None:
    assert identity(authorization="Bearer anything-at-all") == "addr:10.0.0.5"


def test_x_forwarded_for_counts_only_when_trusted_and_then_only_its_last_address() -> None:
    hops = ("198.51.100.1, 203.0.113.7",)

    assert identity(forwarded_for=hops) == "addr:10.0.0.5"
    assert identity(forwarded_for=hops, trust=True) == "addr:203.0.113.7"
    assert identity(forwarded_for=("6.6.6.6", "203.0.113.7"), trust=True) == "addr:203.0.113.7"
    assert identity(forwarded_for=(), trust=True) == "addr:10.0.0.5"


# Over the wire.


def assert_rate_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    seconds = int(response.headers["retry-after"])
    assert 1 <= seconds <= 30  # 2 a minute: a token every 30 s
    assert response.json() == {
        "error": f"Too many requests: retry in {seconds} seconds",
        "code": "rate_limited",
        "retryAfterSeconds": seconds,
    }


async def test_a_client_over_its_limit_gets_429_while_another_key_is_served(
    start_server: Any, sim: SimControl
) -> None:
    url = await start_server(server_api_keys=KEYS, rate_limit_per_minute=2, rate_limit_burst=2)
    ios, android = ({"Authorization": f"Bearer {key}"} for key in (IOS, ANDROID))
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        first = [(await http.post("/token", json={}, headers=ios)).status_code for _ in range(2)]
        third = await http.post("/token", json={}, headers=ios)
        other_key = await http.post("/token", json={}, headers=android)
        minted = len(await sim.requests(CLIENT_SECRETS))

    assert first == [200, 200]
    assert_rate_limited(third)
    assert other_key.status_code == 200
    assert minted == 3  # the refused request never reached upstream


async def test_behind_a_trusted_proxy_each_forwarded_address_has_its_own_bucket(
    start_server: Any,
) -> None:
    url = await start_server(
        rate_limit_per_minute=2, rate_limit_burst=2, trust_x_forwarded_for=True
    )
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:

        async def post(forwarded_for: str) -> httpx.Response:
            return await http.post("/token", json={}, headers={"X-Forwarded-For": forwarded_for})

        spent = [(await post("203.0.113.7")).status_code for _ in range(2)]
        # Addresses a client puts before the proxy's own do not make it someone else.
        spoofed = await post("198.51.100.66, 203.0.113.7")
        another_client = await post("198.51.100.9")

    assert spent == [200, 200]
    assert_rate_limited(spoofed)
    assert another_client.status_code == 200


async def test_without_trust_x_forwarded_for_is_ignored(start_server: Any) -> None:
    url = await start_server(rate_limit_per_minute=2, rate_limit_burst=2)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        statuses = [
            (
                await http.post("/token", json={}, headers={"X-Forwarded-For": f"192.0.2.{n}"})
            ).status_code
            for n in range(3)
        ]

    assert statuses == [200, 200, 429]


async def test_without_server_keys_a_made_up_bearer_token_shares_the_address_bucket(
    start_server: Any,
) -> None:
    url = await start_server(rate_limit_per_minute=2, rate_limit_burst=2)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        statuses = [
            (
                await http.post("/token", json={}, headers={"Authorization": f"Bearer made-up-{n}"})
            ).status_code
            for n in range(3)
        ]

    assert statuses == [200, 200, 429]


async def test_one_bucket_covers_all_four_limited_paths(start_server: Any) -> None:
    url = await start_server(rate_limit_per_minute=3, rate_limit_burst=3)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        session_id = (await http.post("/session", json={})).json()["sessionId"]
        renewed = await http.post("/session/renew", json={"sessionId": session_id})
        extracted = await http.post("/extract-profile", json={"sessionId": session_id})
        refused = [
            (await http.post(path, json={"sessionId": session_id})).status_code
            for path in ("/token", "/session", "/session/renew", "/extract-profile")
        ]

    assert renewed.status_code == 200
    assert extracted.status_code == 400  # nothing said yet; it still counted
    assert refused == [429, 429, 429, 429]


async def test_other_paths_are_never_limited(start_server: Any) -> None:
    url = await start_server(rate_limit_per_minute=1, rate_limit_burst=1)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        session_id = (await http.post("/session", json={})).json()["sessionId"]
        assert (await http.post("/token", json={})).status_code == 429
        statuses = []
        for _ in range(3):
            statuses += [
                (await http.get(f"/session/{session_id}")).status_code,
                (await http.get("/healthz")).status_code,
                (await http.get("/openapi.json")).status_code,
                (await http.get("/tools")).status_code,
                (
                    await http.post("/session/call", json={"sessionId": "nope", "callId": "rtc_x"})
                ).status_code,
                (await http.get("/token")).status_code,
            ]
        closed = await http.post("/session/close", json={"sessionId": session_id})

    assert 429 not in statuses
    assert closed.status_code == 200


async def test_each_client_is_logged_once_when_refused_and_never_by_its_key(
    start_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="realtime_trio.rate_limit")
    url = await start_server(server_api_keys=KEYS, rate_limit_per_minute=1, rate_limit_burst=1)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        for key in (IOS, IOS, IOS, IOS, ANDROID, ANDROID, ANDROID):
            await http.post("/token", json={}, headers={"Authorization": f"Bearer {key}"})

    lines = [r.getMessage() for r in caplog.records if r.name == "realtime_trio.rate_limit"]
    assert len(lines) == 2, lines
    assert all(line.startswith("rate limit: refusing key:") for line in lines)
    assert IOS not in caplog.text
    assert ANDROID not in caplog.text


# 500 at once.

CONCURRENT = 500
# Each request on a connection of its own, as 500 phones would come; spread over 10 clients
# (httpx's pool does work per request for every connection it holds).
CLIENTS, CONNECTIONS_EACH = 10, 50
# Client, server and simulator share one process here, so on a busy machine an upstream call
# can wait on the CPU past the default deadlines; they are not what these tests are about.
PATIENT_UPSTREAM = {"upstream_timeout_seconds": 120, "upstream_retry_total_seconds": 120}


async def post_sessions_at_once(url: str, count: int) -> Counter[int]:
    """*count* POST /session, all started together; the statuses they got."""
    statuses: Counter[int] = Counter()
    limits = httpx.Limits(max_connections=CONNECTIONS_EACH)

    async def one(http: httpx.AsyncClient) -> None:
        statuses[(await http.post("/session", json={})).status_code] += 1

    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=url, timeout=120, limits=limits)
            )
            for _ in range(CLIENTS)
        ]
        async with trio.open_nursery() as nursery:
            for n in range(count):
                nursery.start_soon(one, clients[n % CLIENTS])
    return statuses


async def test_500_concurrent_sessions_all_succeed_with_rate_limits_off(
    start_server: Any,
) -> None:
    url = await start_server(**PATIENT_UPSTREAM)

    statuses = await post_sessions_at_once(url, CONCURRENT)

    assert statuses == {200: CONCURRENT}


async def test_500_concurrent_sessions_from_one_client_beyond_the_burst_get_429(
    start_server: Any, sim: SimControl
) -> None:
    per_minute = burst = 100
    url = await start_server(
        rate_limit_per_minute=per_minute, rate_limit_burst=burst, **PATIENT_UPSTREAM
    )

    started = trio.current_time()  # the clock the server's buckets run on, too
    statuses = await post_sessions_at_once(url, CONCURRENT)
    # The bucket refills while the burst is served: at most this many tokens came back.
    refilled = math.ceil((trio.current_time() - started) * per_minute / 60)
    minted = len(await sim.requests(CLIENT_SECRETS))

    assert set(statuses) == {200, 429}
    assert burst <= statuses[200] <= burst + refilled
    assert statuses[200] + statuses[429] == CONCURRENT
    assert minted == statuses[200]  # no refused request reached upstream
