"""CORS_ALLOW_ORIGINS: off by default; when set, preflights from listed origins only."""

from __future__ import annotations

from typing import Any

import httpx

ALLOWED, OTHER = "https://admin.example.com", "https://evil.example.net"


def preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }


async def test_cors_is_off_unless_origins_are_listed(start_server: Any) -> None:
    url = await start_server()
    async with httpx.AsyncClient(base_url=url) as client:
        answer = await client.options("/token", headers=preflight(ALLOWED))
        minted = await client.post("/token", json={}, headers={"Origin": ALLOWED})

    assert minted.status_code == 200
    assert "access-control-allow-origin" not in answer.headers
    assert "access-control-allow-origin" not in minted.headers


async def test_a_listed_origin_is_allowed_by_preflight_and_on_the_call(start_server: Any) -> None:
    url = await start_server(cors_allow_origins=f"{ALLOWED}, https://other.example.org")
    async with httpx.AsyncClient(base_url=url) as client:
        answer = await client.options("/token", headers=preflight(ALLOWED))
        minted = await client.post("/token", json={}, headers={"Origin": ALLOWED})

    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == ALLOWED
    assert {m.strip() for m in answer.headers["access-control-allow-methods"].split(",")} >= {
        "POST"
    }
    allowed_headers = answer.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed_headers
    assert "content-type" in allowed_headers
    assert minted.status_code == 200
    assert minted.headers["access-control-allow-origin"] == ALLOWED
    exposed = {
        h.strip().lower() for h in minted.headers["access-control-expose-headers"].split(",")
    }
    assert exposed == {"x-request-id", "retry-after"}
    assert minted.headers["x-request-id"]


async def test_an_unlisted_origin_gets_no_allowance(start_server: Any) -> None:
    url = await start_server(cors_allow_origins=ALLOWED)
    async with httpx.AsyncClient(base_url=url) as client:
        answer = await client.options("/token", headers=preflight(OTHER))

    assert "access-control-allow-origin" not in answer.headers


async def test_a_preflight_needs_no_api_key(start_server: Any) -> None:
    url = await start_server(cors_allow_origins=ALLOWED, server_api_keys="k" * 24)
    async with httpx.AsyncClient(base_url=url) as client:
        answer = await client.options("/session", headers=preflight(ALLOWED))
        call = await client.post("/session", json={}, headers={"Origin": ALLOWED})

    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == ALLOWED
    assert call.status_code == 401  # the call itself still needs its key
    assert call.headers["access-control-allow-origin"] == ALLOWED
