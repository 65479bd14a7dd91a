"""`GET /inspector`: the page and its files, served from the package without a key.

(The page at work, in Chromium, is test_inspector_browser.)
"""

from __future__ import annotations

import httpx
import pytest

from realtime_trio.testing import StartServer

KEY = "inspector-key-0123456789"


@pytest.fixture
async def locked(start_server: StartServer) -> str:
    return await start_server(server_api_keys=KEY)


@pytest.mark.parametrize(
    ("path", "content_type", "marker"),
    [
        ("/inspector", "text/html; charset=utf-8", '<input id="key" name="key" type="password"'),
        ("/inspector/favicon.svg", "image/svg+xml", "<svg"),
        ("/inspector/inspector.js", "text/javascript; charset=utf-8", "readEvents"),
        ("/inspector/inspector.css", "text/css; charset=utf-8", "#session-list"),
    ],
)
async def test_the_page_and_its_files_need_no_key(
    locked: str, path: str, content_type: str, marker: str
) -> None:
    async with httpx.AsyncClient(base_url=locked) as client:
        response = await client.get(path)

    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert marker in response.text


async def test_the_page_loads_only_its_own_files(locked: str) -> None:
    async with httpx.AsyncClient(base_url=locked) as client:
        page = (await client.get("/inspector")).text

    assert 'href="inspector/inspector.css"' in page
    assert 'src="inspector/inspector.js"' in page
    assert "http://" not in page
    assert "https://" not in page


@pytest.mark.parametrize(
    "path",
    [
        "/inspector/nothing.js",
        "/inspector/index.html",  # the page is /inspector, where its relative links resolve
        "/inspector/..%2f_config.py",
        "/inspector/%2e%2e%2fpy.typed",
        # Open paths, but never a way around the key to the API.
        "/inspector/%2e%2e/tools",
        "/inspector/..%2ftools",
        "/inspector/inspector",
        "/inspector/sub/inspector.js",
    ],
)
async def test_anything_else_is_not_found(locked: str, path: str) -> None:
    async with httpx.AsyncClient(base_url=locked) as client:
        response = await client.get(path)

    assert response.status_code == 404
    assert "realtime_trio" not in response.text


async def test_a_trailing_slash_leads_to_the_page(locked: str) -> None:
    async with httpx.AsyncClient(base_url=locked, follow_redirects=True) as client:
        response = await client.get("/inspector/")

    assert response.status_code == 200
    assert response.url.path == "/inspector"


async def test_the_api_still_needs_the_key(locked: str) -> None:
    async with httpx.AsyncClient(base_url=locked) as client:
        refused = await client.get("/session/abc")
        allowed = await client.get("/session/abc", headers={"Authorization": f"Bearer {KEY}"})

    assert refused.status_code == 401
    assert allowed.status_code == 404


async def test_disabled_it_is_not_found(start_server: StartServer) -> None:
    server = await start_server(inspector_enabled=False)
    async with httpx.AsyncClient(base_url=server) as client:
        for path in ("/inspector", "/inspector/inspector.js"):
            assert (await client.get(path)).status_code == 404


async def test_it_is_not_in_the_openapi_document(locked: str) -> None:
    async with httpx.AsyncClient(base_url=locked) as client:
        document = await client.get("/openapi.json", headers={"Authorization": f"Bearer {KEY}"})

    assert not [path for path in document.json()["paths"] if path.startswith("/inspector")]
