"""SERVER_API_KEYS: who may use the server, checked before any handler, over real sockets.

(That `serve` says at start-up when it is open is checked in test_cli.)
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

KEYS = "key-for-ios-0123456789,key-for-android-9876543210"
IOS, ANDROID = KEYS.split(",")
TOOLS = Path(__file__).parents[1] / "tools"


@pytest.fixture
async def locked(start_server: Any) -> str:
    return await start_server(server_api_keys=KEYS)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/token"),
        ("POST", "/session"),
        ("POST", "/session/renew"),
        ("POST", "/extract-profile"),
        ("GET", "/session/abc"),
        ("GET", "/tools"),
        ("GET", "/openapi.json"),
        ("GET", "/no-such-route"),
    ],
)
async def test_every_endpoint_but_healthz_needs_a_key(locked: str, method: str, path: str) -> None:
    async with httpx.AsyncClient(base_url=locked) as client:
        response = await client.request(method, path, json={})

    assert response.status_code == 401
    assert response.json() == {
        "error": "Missing API key: send Authorization: Bearer <key>",
        "code": "unauthorized",
    }
    assert response.headers["www-authenticate"] == "Bearer"


async def test_healthz_stays_open(locked: str) -> None:
    async with httpx.AsyncClient(base_url=locked) as client:
        response = await client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize("key", [IOS, ANDROID])
async def test_any_listed_key_is_let_in(locked: str, key: str) -> None:
    async with httpx.AsyncClient(base_url=locked) as client:
        response = await client.post("/token", json={}, headers={"Authorization": f"Bearer {key}"})

    assert response.status_code == 200, response.text
    assert response.json()["clientSecret"].startswith("ek_")


async def test_the_scheme_is_case_insensitive(locked: str) -> None:
    async with httpx.AsyncClient(base_url=locked) as client:
        response = await client.get("/tools", headers={"Authorization": f"bearer {IOS}"})

    assert response.status_code == 200


@pytest.mark.parametrize(
    "authorization",
    [f"Bearer {IOS}x", f"Bearer {IOS[:-1]}", "Bearer " + KEYS, f"Basic {IOS}", IOS],
)
async def test_a_wrong_key_is_refused_without_echoing_it(
    locked: str, authorization: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with httpx.AsyncClient(base_url=locked) as client:
        response = await client.post("/session", json={}, headers={"Authorization": authorization})

    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
    for secret in (IOS, ANDROID, authorization):
        assert secret not in response.text
        assert secret not in caplog.text


async def test_the_mint_token_tool_sends_its_api_key(locked: str) -> None:
    async def mint(*extra: str) -> Any:
        return await trio.run_process(
            [sys.executable, str(TOOLS / "mint_token.py"), "--server", locked, *extra],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )

    refused, minted = await mint(), await mint("--api-key", ANDROID)

    assert refused.returncode != 0
    assert b"unauthorized" in refused.stdout + refused.stderr
    assert minted.returncode == 0, minted.stderr
    assert json.loads(minted.stdout)["clientSecret"].startswith("ek_")


@pytest.mark.parametrize("padding", ["\xa0", "\x85"])
async def test_only_http_whitespace_around_the_key_is_ignored(
    start_server: Any, padding: str
) -> None:
    """A tab or space before the key is HTTP's whitespace; a no-break space is not."""
    url = await start_server(server_api_keys="key-one")
    async with httpx.AsyncClient(base_url=url) as client:
        spaced = await client.get("/tools", headers={"Authorization": "Bearer \tkey-one"})
        padded = await client.get(
            "/tools", headers={"Authorization": f"Bearer key-one{padding}".encode("latin-1")}
        )

    assert spaced.status_code == 200
    assert padded.status_code == 401
