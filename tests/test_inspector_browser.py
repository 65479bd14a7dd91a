"""The inspector page at work in a real browser: Debian's Chromium, headless, driven by
Playwright's Python package (never a browser Playwright downloads).

Playwright's async API needs asyncio, so its sync API runs the browser in a worker thread while
the server and the simulator run in the Trio test; the browser's script calls back into Trio
(`trio.from_thread.run`) to play a turn at the moment it wants one. Without `chromium` on the
PATH or without the `playwright` package, this test skips and says which is missing.
"""

from __future__ import annotations

import shutil
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import trio

from realtime_trio.testing import SimControl, StartServer, open_call

KEY = "inspector-browser-key-0123456789"
# As root, in a closed network: no sandbox, no GPU, and nothing reaching out on its own.
# (Playwright adds a fresh, empty user-data-dir itself.)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
]
WAIT_MS = 20_000


@pytest.fixture
def browser_kit() -> tuple[str, Any]:
    """Chromium's path and `playwright.sync_api`; skips the test, saying which is missing."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip(
            "chromium is not installed (Debian's `chromium` package: apt-get install chromium; "
            ".ci/run installs it)"
        )
    try:
        from playwright import sync_api
    except ImportError:
        pytest.skip("the playwright package is not installed (pip install playwright: dev extra)")
    return chromium, sync_api


def is_page_file(url: str) -> bool:
    return urlsplit(url).path.startswith("/inspector")


async def play_turn(sim: SimControl, call_id: str, *, user: str, reply: str) -> None:
    await sim.drive(call_id, "replies", text=reply)
    await sim.drive(call_id, "user", text=user)


async def test_the_inspector_shows_a_session_live_in_chromium(
    browser_kit: tuple[str, Any], start_server: StartServer, sim: SimControl
) -> None:
    chromium, sync_api = browser_kit
    expect = sync_api.expect
    url = await start_server(server_api_keys=KEY)
    auth = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=url, timeout=30, headers=auth) as client:
        call = await open_call(client, sim, enableTranscription=True)
        await play_turn(sim, call.call_id, user="Hi, I'm Ada.", reply="Hello Ada, welcome!")

        async def second_turn() -> None:
            await play_turn(
                sim, call.call_id, user="Is it cold on Mars?", reply="Very cold, and dusty."
            )

        async def end_session() -> None:
            closed = await client.post("/session/close", json={"sessionId": call.session_id})
            assert closed.json()["closed"] is True

        def browse() -> list[tuple[str, dict[str, str]]]:
            """The developer's part, in the browser; returns the URL and headers of every
            request the page made."""
            with sync_api.sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=chromium, headless=True, args=CHROMIUM_ARGS
                )
                try:
                    page = browser.new_page()
                    page.set_default_timeout(WAIT_MS)
                    expect.set_options(timeout=WAIT_MS)
                    requests: list[Any] = []
                    page.on("request", lambda request: requests.append(request))
                    page.goto(f"{url}/inspector")

                    # The page asks for the key, which Enter submits.
                    key_field = page.locator("input[type=password]")
                    expect(key_field).to_be_visible()
                    key_field.fill(KEY)
                    key_field.press("Enter")
                    expect(key_field).to_be_hidden()

                    page.locator(f'a[href*="{call.session_id}"]').click()
                    transcript = page.locator("#transcript")
                    expect(transcript).to_contain_text("Hi, I'm Ada.")
                    expect(transcript).to_contain_text("Hello Ada, welcome!")
                    expect(page.locator("#session-id")).to_have_text(call.session_id)

                    # A new turn shows up live: same document, no reload.
                    page.evaluate("window.sameDocument = true")
                    trio.from_thread.run(second_turn)
                    expect(transcript).to_contain_text("Is it cold on Mars?")
                    expect(transcript).to_contain_text("Very cold, and dusty.")
                    assert page.evaluate("window.sameDocument === true")
                    assert KEY not in page.url

                    # The session ends: its stream closes and the page says so.
                    trio.from_thread.run(end_session)
                    expect(page.locator("#session-ended")).to_have_text("This session has ended.")
                    # (Headers read while the browser is still open.)
                    return [(r.url, r.all_headers()) for r in requests]
                finally:
                    browser.close()

        requests = await trio.to_thread.run_sync(browse)

    # The key went in a bearer header on the API calls, never in a URL nor to the page's files.
    assert all(KEY not in request_url for request_url, _ in requests)
    files = [headers for request_url, headers in requests if is_page_file(request_url)]
    # The last request to each API URL (the first to /sessions was refused: no key yet).
    api = {request_url: h for request_url, h in requests if not is_page_file(request_url)}
    assert files
    assert all("authorization" not in headers for headers in files)
    assert f"{url}/session/{call.session_id}/events" in api
    assert f"{url}/sessions" in api
    assert api[f"{url}/sessions"]["authorization"] == f"Bearer {KEY}"
    assert api[f"{url}/session/{call.session_id}/events"]["authorization"] == f"Bearer {KEY}"
