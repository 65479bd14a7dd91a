"""The `realtime-trio` command as a real process: serve, stop on SIGTERM, and the demo."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import trio

from realtime_trio import __version__
from realtime_trio.simulator import DEFAULT_API_KEY, RunningSimulator

COMMAND = [sys.executable, "-m", "realtime_trio"]


async def _read_until(stream: trio.abc.ReceiveStream, pattern: re.Pattern[str], seen: list[str]):
    buffer = ""
    while (match := pattern.search(buffer)) is None:
        chunk = await stream.receive_some()
        if not chunk:
            raise AssertionError(f"process ended before {pattern.pattern!r}:\n{buffer}")
        buffer += chunk.decode()
    seen.append(buffer)
    return match


async def test_serve_runs_logs_and_stops_cleanly_on_sigterm(
    simulator: RunningSimulator, tmp_path: Path
) -> None:
    env = {
        "OPENAI_API_KEY": DEFAULT_API_KEY,
        "OPENAI_BASE_URL": simulator.base_url,
        "HOST": "127.0.0.1",
        "PORT": "0",
        "LOG_LEVEL": "debug",
    }
    process = await trio.lowlevel.open_process(
        [*COMMAND, "serve"], cwd=tmp_path, env=env, stderr=subprocess.PIPE
    )
    seen: list[str] = []
    try:
        with trio.fail_after(60):
            assert process.stderr is not None
            url = (await _read_until(process.stderr, re.compile(r"Running on (http://\S+)"), seen))[
                1
            ]
            async with httpx.AsyncClient(base_url=url) as http:
                response = await http.post("/token", json={"voice": "marin"})
            assert response.status_code == 200
            await _read_until(process.stderr, re.compile(r"POST /token 200 \d+\.\dms"), seen)
            process.send_signal(signal.SIGTERM)
            assert await process.wait() == 0
            while chunk := await process.stderr.receive_some():
                seen.append(chunk.decode())
    finally:
        process.kill()
        await process.wait()

    log = "".join(seen)
    assert "received SIGTERM, shutting down" in log
    assert log.count("SERVER_API_KEYS is not set: every endpoint is open") == 1
    assert DEFAULT_API_KEY not in log
    assert response.json()["clientSecret"] not in log
    assert response.json()["clientSecret"][:7] + "…" in log


async def test_at_info_each_request_logs_its_access_line_and_nothing_else(
    simulator: RunningSimulator, tmp_path: Path
) -> None:
    """Logging at INFO is cheap: no library's per-request lines (httpx logs each request at
    INFO), no per-session chatter, one access line per request."""
    env = {
        "OPENAI_API_KEY": DEFAULT_API_KEY,
        "OPENAI_BASE_URL": simulator.base_url,
        "HOST": "127.0.0.1",
        "PORT": "0",
        "LOG_LEVEL": "info",
        "SERVER_API_KEYS": "",
    }
    process = await trio.lowlevel.open_process(
        [*COMMAND, "serve"], cwd=tmp_path, env=env, stderr=subprocess.PIPE
    )
    seen: list[str] = []
    try:
        with trio.fail_after(60):
            assert process.stderr is not None
            running = re.compile(r"Running on (http://\S+)")
            url = (await _read_until(process.stderr, running, seen))[1]
            start = len("".join(seen))
            async with httpx.AsyncClient(base_url=url) as http:
                token = await http.post("/token", json={})
                session = await http.post("/session", json={})
            assert (token.status_code, session.status_code) == (200, 200)
            await _read_until(process.stderr, re.compile(r"POST /session 200 \d+\.\dms"), seen)
            process.send_signal(signal.SIGTERM)
            assert await process.wait() == 0
    finally:
        process.kill()
        await process.wait()

    during = "".join(seen)[start:].strip().splitlines()
    assert len(during) == 2, during
    assert "POST /token 200" in during[0]
    assert "POST /session 200" in during[1]


def test_version() -> None:
    result = subprocess.run(
        [*COMMAND, "--version"], capture_output=True, text=True, timeout=60, check=True
    )

    assert result.stdout.strip() == f"realtime-trio {__version__}"


def test_demo_plays_the_conversation_through_the_server(tmp_path: Path) -> None:
    result = subprocess.run(
        [*COMMAND, "demo", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert set(report) >= {"timeline", "transcript", "profile", "instructions", "toolOutputs"}
    minted = next(s for s in report["timeline"] if s["what"] == "POST /session")
    assert minted["clientSecret"].startswith("ek_")
    assert report["closed"] == 204
