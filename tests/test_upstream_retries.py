"""Upstream retries over real sockets: what the simulator received, and what the server answered.

Faults are armed and requests read through the simulator's `/_sim` API. Backoffs are a few
milliseconds so the tests are quick; the only timing checked is that a `Retry-After` was waited.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from realtime_trio.simulator import DEFAULT_API_KEY, RunningSimulator
from sim_client import SimControl, closed_port, live_session, session_state, wait_until

CLIENT_SECRETS = "/v1/realtime/client_secrets"
RESPONSES = "/v1/responses"
QUICK = {"upstream_retry_backoff_seconds": 0.01, "upstream_retry_max_backoff_seconds": 0.05}


@pytest.fixture
async def quick(start_server: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a server that retries twice, a few milliseconds apart."""
    url = await start_server(upstream_retry_attempts=2, **QUICK)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        yield http


@pytest.mark.parametrize("endpoint", ["/token", "/session"])
async def test_a_500_is_retried_and_the_client_gets_its_secret(
    quick: httpx.AsyncClient,
    sim: SimControl,
    simulator: RunningSimulator,
    endpoint: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    await sim.arm_fault(CLIENT_SECRETS, status=500)

    response = await quick.post(endpoint, json={"voice": "marin"})

    assert response.status_code == 200, response.text
    assert list(simulator.state.secrets) == [response.json()["clientSecret"]]
    first, second = await sim.requests(CLIENT_SECRETS)
    assert first["body"] == second["body"]
    (retried,) = [r.getMessage() for r in caplog.records if r.name.endswith("upstream_retry")]
    assert retried.startswith(
        "upstream POST /realtime/client_secrets attempt 1 of 3: answered 500 Internal Server Error"
    )
    assert "retrying in 0.0" in retried
    assert DEFAULT_API_KEY not in caplog.text


async def test_a_429_waits_as_long_as_retry_after_says(
    quick: httpx.AsyncClient, sim: SimControl
) -> None:
    await sim.arm_fault(CLIENT_SECRETS, status=429, headers={"Retry-After": "1"})

    response = await quick.post("/token")

    assert response.status_code == 200, response.text
    first, second = await sim.requests(CLIENT_SECRETS)
    # Not a timing test: without Retry-After the backoff here is a few milliseconds.
    assert second["receivedAt"] - first["receivedAt"] >= 0.9


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_other_4xx_are_final_at_once(
    quick: httpx.AsyncClient, sim: SimControl, status: int
) -> None:
    error = {"message": "No.", "type": "invalid_request_error", "code": "nope"}
    await sim.arm_fault(CLIENT_SECRETS, status=status, error=error)

    response = await quick.post("/token")

    assert response.status_code == 502
    assert response.json() == {
        "error": f"Upstream error {status}: No.",
        "code": "upstream_error",
        "upstreamStatus": status,
        "upstreamCode": "nope",
    }
    assert len(await sim.requests(CLIENT_SECRETS)) == 1


@pytest.mark.parametrize("retries", [0, 1, 3])
async def test_a_persistent_503_is_tried_once_plus_the_retries(
    start_server: Any, sim: SimControl, retries: int
) -> None:
    await sim.arm_fault(
        CLIENT_SECRETS, status=503, times=10, error={"message": "Overloaded", "type": "x"}
    )
    url = await start_server(upstream_retry_attempts=retries, **QUICK)

    async with httpx.AsyncClient(base_url=url) as http:
        response = await http.post("/token")

    assert response.status_code == 502
    assert response.json() == {
        "error": "Upstream error 503: Overloaded",
        "code": "upstream_error",
        "upstreamStatus": 503,
        "upstreamCode": None,
    }
    assert len(await sim.requests(CLIENT_SECRETS)) == 1 + retries


async def test_a_retry_after_beyond_the_total_budget_is_not_waited(
    start_server: Any, sim: SimControl
) -> None:
    # Waiting would succeed (the fault is armed once): the 429 shows it was not waited for.
    await sim.arm_fault(CLIENT_SECRETS, status=429, headers={"Retry-After": "60"})
    url = await start_server(upstream_retry_total_seconds=5, **QUICK)

    async with httpx.AsyncClient(base_url=url) as http:
        response = await http.post("/token")

    assert response.status_code == 502
    assert response.json()["upstreamStatus"] == 429
    assert len(await sim.requests(CLIENT_SECRETS)) == 1


async def test_a_timeout_is_not_retried_and_nothing_is_left_stuck(
    start_server: Any, sim: SimControl
) -> None:
    await sim.arm_fault(CLIENT_SECRETS, delay_seconds=30)
    url = await start_server(upstream_timeout_seconds=0.5, **QUICK)

    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        timed_out = await http.post("/token")
        after = await http.post("/token")

    assert timed_out.status_code == 504
    assert timed_out.json() == {
        "error": "Upstream did not answer POST /realtime/client_secrets within 0.5 seconds",
        "code": "upstream_timeout",
    }
    assert after.status_code == 200, after.text
    assert len(await sim.requests(CLIENT_SECRETS)) == 2  # the slow one and the next /token's


async def test_a_refused_connection_is_retried_then_a_502(
    start_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    url = await start_server(
        openai_base_url=f"http://127.0.0.1:{closed_port()}/v1", upstream_retry_attempts=2, **QUICK
    )

    async with httpx.AsyncClient(base_url=url) as http:
        response = await http.post("/token")

    assert response.status_code == 502
    assert response.json()["code"] == "upstream_unreachable"
    retried = [r.getMessage() for r in caplog.records if r.name.endswith("upstream_retry")]
    assert [line.split(":")[0] for line in retried] == [
        "upstream POST /realtime/client_secrets attempt 1 of 3",
        "upstream POST /realtime/client_secrets attempt 2 of 3",
    ]
    assert all("Upstream unreachable" in line for line in retried)
    assert DEFAULT_API_KEY not in caplog.text


async def test_an_extraction_is_retried_after_a_500(
    quick: httpx.AsyncClient, sim: SimControl
) -> None:
    session_id, call_id = await live_session(quick, sim, enableTranscription=True)
    await sim.drive(call_id, "user", text="Hi, my name is Ada Lovelace.")
    await wait_until(lambda: _transcribed(quick, session_id))
    await sim.arm_fault(RESPONSES, status=500)

    response = await quick.post("/extract-profile", json={"sessionId": session_id})

    assert response.status_code == 200, response.text
    assert response.json()["profile"]["first_name"] == "Ada"
    first, second = await sim.requests(RESPONSES)
    assert first["body"] == second["body"]


async def _transcribed(client: httpx.AsyncClient, session_id: str) -> bool:
    entries = (await session_state(client, session_id))["transcript"]
    return bool(entries) and all(e["status"] == "complete" for e in entries)
