"""A refused request never stalls the next one on the same keep-alive connection.

Apps reuse connections (URLSession, OkHttp, httpx): after an answer the server sends without
reading the request's body (401, 429, 413, 404, 405), the next request on that connection must
be answered at once, or the connection closed cleanly (`Connection: close`) so the client opens
another. The refused requests send their headers first and their body a moment later, as a
phone on a real network may: the answer then goes out before the body has arrived, which is
what used to leave the connection stalled. Each case alternates 60 refused and 60 accepted
requests on one connection at a time, with a short client timeout: a stall is a timeout.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio

KEY = "k" * 24
LIMIT = 1024  # MAX_REQUEST_BODY_BYTES for these servers
PAIRS = 60
CLIENT_TIMEOUT_SECONDS = 3.0
BODY_DELAY_SECONDS = 0.02

ACCEPTED = ("POST", "/session/close")
CASES: dict[str, tuple[dict[str, Any], str, str, int, int]] = {
    # settings, method, path, body size, status
    "401": ({"server_api_keys": KEY}, "POST", "/session/close", 200, 401),
    "429": ({"rate_limit_per_minute": 1, "rate_limit_burst": 1}, "POST", "/token", 200, 429),
    "413": ({}, "POST", "/session/close", 4 * LIMIT, 413),
    "404": ({}, "POST", "/no/such/route", 200, 404),
    "405": ({}, "PUT", "/token", 200, 405),
}


def late_body(size: int) -> tuple[dict[str, str], Any]:
    """Headers and a body of *size* bytes that is sent only after the headers have gone."""
    data = json.dumps({"sessionId": "unknown", "pad": "x" * max(0, size - 40)}).encode()

    async def body() -> AsyncIterator[bytes]:
        await trio.sleep(BODY_DELAY_SECONDS)
        yield data

    headers = {"Content-Type": "application/json", "Content-Length": str(len(data))}
    return headers, body()


@pytest.mark.parametrize("case", list(CASES))
async def test_refusals_never_stall_the_connection(start_server: Any, case: str) -> None:
    settings, method, path, size, status = CASES[case]
    url = await start_server(max_request_body_bytes=LIMIT, **settings)
    key = {"Authorization": f"Bearer {KEY}"}
    stalls: list[int] = []
    async with httpx.AsyncClient(
        base_url=url,
        timeout=CLIENT_TIMEOUT_SECONDS,
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
    ) as client:
        if case == "429":  # the bucket's one request, spent
            assert (await client.post("/token", json={})).status_code == 200
        for n in range(PAIRS):
            headers, body = late_body(size)
            if case == "401":
                headers["Authorization"] = "Bearer wrong-key"
            try:
                refused = await client.request(method, path, headers=headers, content=body)
                accepted = await client.request(
                    *ACCEPTED, json={"sessionId": "unknown"}, headers=key
                )
            except httpx.TimeoutException:
                stalls.append(n)
                continue
            assert refused.status_code == status, refused.text
            assert isinstance(refused.json()["error"], str)
            assert accepted.json() == {"sessionId": "unknown", "closed": False}

    assert stalls == []
