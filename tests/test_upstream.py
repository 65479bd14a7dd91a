"""`OpenAIClient` on its own, with httpx's MockTransport standing in for the network."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
import trio

from realtime_trio._config import Settings
from realtime_trio._errors import UpstreamBadResponse, UpstreamStatusError, UpstreamTimeout
from realtime_trio._upstream import OpenAIClient
from realtime_trio._upstream_retry import RetryPolicy, retry_after_seconds, should_retry

KEY = "sk-unit-test-key-abcdef"
NOW = 1_700_000_000.0


def client_answering(handler: Any, **settings: Any) -> OpenAIClient:
    values = {"openai_api_key": KEY, **settings}
    return OpenAIClient(
        Settings(_env_file=None, **values),  # type: ignore[call-arg]
        http=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
    )


async def test_reads_the_ga_shape() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, json={"value": "ek_new", "expires_at": 1700000000, "session": {}}
        )

    secret = await client_answering(handler).create_client_secret({"type": "realtime"})

    assert (secret.value, secret.expires_at) == ("ek_new", 1700000000)
    (request,) = seen
    assert str(request.url) == "https://api.openai.com/v1/realtime/client_secrets"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert "openai-beta" not in request.headers
    assert json.loads(request.content) == {"session": {"type": "realtime"}}


async def test_reads_the_older_nested_shape() -> None:
    body = {"id": "sess_1", "client_secret": {"value": "ek_old", "expires_at": 1600000000}}

    secret = await client_answering(lambda _: httpx.Response(200, json=body)).create_client_secret(
        {"type": "realtime"}
    )

    assert (secret.value, secret.expires_at, secret.raw) == ("ek_old", 1600000000, body)


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, text="<html>proxy says hi</html>"),
        httpx.Response(200, json=["not", "an", "object"]),
        httpx.Response(200, json={"value": 5, "expires_at": 1}),
        httpx.Response(200, json={"value": "ek_x", "expires_at": "soon"}),
    ],
)
async def test_unusable_answers_are_bad_responses(answer: httpx.Response) -> None:
    with pytest.raises(UpstreamBadResponse):
        await client_answering(lambda _: answer).create_client_secret({"type": "realtime"})


async def test_error_bodies_that_are_not_openais_shape_still_explain() -> None:
    answer = httpx.Response(500, text=f"gateway exploded while using {KEY}")

    with pytest.raises(UpstreamStatusError) as raised:
        await client_answering(lambda _: answer, upstream_retry_attempts=0).create_client_secret(
            {"type": "realtime"}
        )

    assert raised.value.upstream_status == 500
    assert "gateway exploded" in raised.value.message
    assert KEY not in raised.value.message


# -- the retry policy alone (over real sockets: test_upstream_retries.py) ------------------


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({}, None),
        ({"Retry-After": "3"}, 3.0),
        ({"Retry-After": "0"}, 0.0),
        ({"retry-after-ms": "250", "Retry-After": "1"}, 0.25),
        ({"retry-after-ms": "soon", "Retry-After": "2"}, 2.0),
        ({"Retry-After": format_datetime(datetime.fromtimestamp(NOW + 7, UTC), usegmt=True)}, 7.0),
        ({"Retry-After": format_datetime(datetime.fromtimestamp(NOW - 7, UTC), usegmt=True)}, 0.0),
        ({"Retry-After": "-1"}, None),
        ({"Retry-After": "inf"}, None),
        ({"Retry-After": "whenever"}, None),
    ],
)
def test_retry_after_is_read_in_milliseconds_seconds_or_a_date(
    headers: dict[str, str], seconds: float | None
) -> None:
    assert retry_after_seconds(httpx.Headers(headers), now=NOW) == seconds


def test_backoff_doubles_up_to_the_cap_and_keeps_at_least_half() -> None:
    policy = RetryPolicy(
        retries=99,
        backoff_seconds=0.5,
        max_backoff_seconds=3,
        total_seconds=30,
        attempt_timeout_seconds=15,
    )

    for retry, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (5000, 3.0)]:
        assert all(ceiling / 2 <= policy.backoff(retry) <= ceiling for _ in range(50))


async def test_retry_after_is_waited_exactly(autojump_clock: trio.abc.Clock) -> None:
    asked_at: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked_at.append(trio.current_time())
        if len(asked_at) == 1:
            return httpx.Response(429, headers={"Retry-After": "20"}, json={"error": {}})
        return httpx.Response(200, json={"value": "ek_late", "expires_at": 1})

    secret = await client_answering(handler).create_client_secret({"type": "realtime"})

    assert secret.value == "ek_late"
    assert asked_at[1] - asked_at[0] == pytest.approx(20)


async def test_an_attempt_never_outlives_the_total_budget(autojump_clock: trio.abc.Clock) -> None:
    calls: list[float] = []

    async def first_fails_then_hangs(request: httpx.Request) -> httpx.Response:
        calls.append(trio.current_time())
        if len(calls) == 1:
            return httpx.Response(503, json={"error": {"message": "busy"}})
        await trio.sleep(100)
        raise AssertionError("cut off before this")

    client = client_answering(
        first_fails_then_hangs,
        upstream_timeout_seconds=15,
        upstream_retry_total_seconds=4,
        upstream_retry_backoff_seconds=1,
    )
    with pytest.raises(UpstreamTimeout) as raised:
        await client.create_client_secret({"type": "realtime"})

    assert len(calls) == 2
    assert trio.current_time() == pytest.approx(calls[0] + 4)  # not 15 s into the second try
    assert "within 15 seconds" not in raised.value.message


@pytest.mark.parametrize(
    ("status", "headers", "body", "retried"),
    [
        (503, {}, {}, True),
        (429, {}, {"error": {"code": "rate_limit_exceeded"}}, True),
        (429, {}, {"error": {"code": "insufficient_quota"}}, False),  # only billing helps
        (500, {"x-should-retry": "false"}, {}, False),
        (409, {}, {}, False),
    ],
)
def test_which_answers_earn_a_retry(
    status: int, headers: dict[str, str], body: dict[str, Any], retried: bool
) -> None:
    assert should_retry(httpx.Response(status, headers=headers, json=body)) is retried
