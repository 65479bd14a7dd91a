"""The `realtime-trio` command as a real process: serve, stop on SIGTERM, and the demo."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
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


@dataclass
class Served:
    """A `realtime-trio serve` process: its URL, and its stderr as read so far (`seen`)."""

    process: trio.Process
    url: str
    seen: list[str]

    @property
    def stderr(self) -> trio.abc.ReceiveStream:
        assert self.process.stderr is not None
        return self.process.stderr


@asynccontextmanager
async def served(simulator: RunningSimulator, cwd: Path, **settings: str) -> AsyncIterator[Served]:
    """`realtime-trio serve` on a free port, the simulator its upstream, until the block ends
    (then killed, if it has not exited)."""
    env = {
        "OPENAI_API_KEY": DEFAULT_API_KEY,
        "OPENAI_BASE_URL": simulator.base_url,
        "HOST": "127.0.0.1",
        "PORT": "0",
        **settings,
    }
    process = await trio.lowlevel.open_process(
        [*COMMAND, "serve"], cwd=cwd, env=env, stderr=subprocess.PIPE
    )
    try:
        assert process.stderr is not None
        seen: list[str] = []
        url = (await _read_until(process.stderr, re.compile(r"Running on (http://\S+)"), seen))[1]
        yield Served(process, url, seen)
    finally:
        process.kill()
        await process.wait()


async def test_serve_runs_logs_and_stops_cleanly_on_sigterm(
    simulator: RunningSimulator, tmp_path: Path
) -> None:
    with trio.fail_after(60):
        async with served(simulator, tmp_path, LOG_LEVEL="debug") as server:
            async with httpx.AsyncClient(base_url=server.url) as http:
                response = await http.post("/token", json={"voice": "marin"})
            assert response.status_code == 200
            await _read_until(server.stderr, re.compile(r"POST /token 200 \d+\.\dms"), server.seen)
            server.process.send_signal(signal.SIGTERM)
            assert await server.process.wait() == 0
            while chunk := await server.stderr.receive_some():
                server.seen.append(chunk.decode())

    log = "".join(server.seen)
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
    with trio.fail_after(60):
        async with served(simulator, tmp_path, LOG_LEVEL="info", SERVER_API_KEYS="") as server:
            start = len("".join(server.seen))
            async with httpx.AsyncClient(base_url=server.url) as http:
                token = await http.post("/token", json={})
                session = await http.post("/session", json={})
            assert (token.status_code, session.status_code) == (200, 200)
            await _read_until(
                server.stderr, re.compile(r"POST /session 200 \d+\.\dms"), server.seen
            )
            server.process.send_signal(signal.SIGTERM)
            assert await server.process.wait() == 0

    during = "".join(server.seen)[start:].strip().splitlines()
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
