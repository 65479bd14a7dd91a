"""Shutdown the way `docker stop` and Ctrl-C do it: signals to real `realtime-trio` processes.

The simulator runs once for the module, the server once per test, each a child process that
logs to a file (its address is read from there: both listen on port 0). Times are only
asserted as generous bounds that prove nothing hung.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trio

from realtime_trio._demo import SDP_OFFER
from realtime_trio.simulator import DEFAULT_API_KEY
from sim_client import wait_for_sideband, wait_until

COMMAND = [sys.executable, "-m", "realtime_trio"]
RUNNING_ON = re.compile(r"Running on (http://\S+)")
STARTUP_SECONDS = 30.0
EXIT_SECONDS = 20.0  # far above a clean shutdown's time: exceeding it means something hung


@dataclass(frozen=True)
class Simulator:
    url: str

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"


@dataclass(frozen=True)
class Server:
    url: str
    process: trio.Process
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    async def wait_for_log(self, pattern: str) -> None:
        with trio.fail_after(10):
            while pattern not in self.log_text():  # noqa: ASYNC110 - another process writes it
                await trio.sleep(0.02)

    async def wait_exit(self, seconds: float = EXIT_SECONDS) -> int:
        with trio.fail_after(seconds):
            return await self.process.wait()


@pytest.fixture(scope="module")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    """One `realtime-trio simulate` for the module; stopping it with SIGTERM must give 0."""
    log = tmp_path_factory.mktemp("simulator") / "simulator.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*COMMAND, "simulate", "--host", "127.0.0.1", "--port", "0"],
            stdout=output,
            stderr=output,
        )
    try:
        url = _wait_for_address(log, process)
        httpx.get(f"{url}/_sim/requests", timeout=5).raise_for_status()
        yield Simulator(url)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=EXIT_SECONDS) == 0, log.read_text()
    finally:
        process.kill()
        process.wait()


def _wait_for_address(log: Path, process: subprocess.Popen[bytes]) -> str:
    """The URL Hypercorn logs once its socket listens (so one request is then enough)."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while (match := RUNNING_ON.search(log.read_text(errors="replace"))) is None:
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"the process did not start:\n{log.read_text()}")
        time.sleep(0.02)
    return match[1]


@asynccontextmanager
async def running_server(
    tmp_path: Path, *, upstream: str, **settings: str
) -> AsyncIterator[Server]:
    """`realtime-trio serve` in *tmp_path* (no `.env` there), upstream at *upstream*, once
    `/healthz` answers; killed at the end if it is still running."""
    env = {
        **os.environ,
        "OPENAI_API_KEY": DEFAULT_API_KEY,
        "OPENAI_BASE_URL": upstream,
        "SERVER_API_KEYS": "",
        "PLUGIN_ENTRY_POINTS": "false",
        **settings,
    }
    log = tmp_path / "server.log"
    with log.open("wb") as output:
        process = await trio.lowlevel.open_process(
            [*COMMAND, "serve", "--host", "127.0.0.1", "--port", "0"],
            cwd=tmp_path,
            env=env,
            stdout=output,
            stderr=output,
        )
    try:
        with trio.fail_after(STARTUP_SECONDS):
            while (match := RUNNING_ON.search(log.read_text(errors="replace"))) is None:
                assert process.returncode is None, log.read_text()
                await trio.sleep(0.02)
            url = match[1]
            async with httpx.AsyncClient(base_url=url, timeout=5) as http:
                (await http.get("/healthz")).raise_for_status()  # the socket listens already
        yield Server(url, process, log)
    finally:
        process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()


async def live_session(http: httpx.AsyncClient, simulator: Simulator) -> tuple[str, str]:
    """What the app does: a session, a WebRTC call with its secret, the call reported back;
    returns (sessionId, callId) once the sideband is connected."""
    session = (await http.post("/session", json={})).raise_for_status().json()
    created = await http.post(
        f"{simulator.base_url}/realtime/calls",
        content=SDP_OFFER,
        headers={
            "Authorization": f"Bearer {session['clientSecret']}",
            "Content-Type": "application/sdp",
        },
    )
    assert created.status_code == 201, created.text
    call_id = created.headers["location"].rsplit("/", 1)[-1]
    attached = await http.post(
        "/session/call", json={"sessionId": session["sessionId"], "callId": call_id}
    )
    assert attached.status_code == 200, attached.text
    await wait_for_sideband(http, session["sessionId"], "connected")
    return session["sessionId"], call_id


async def test_sigterm_closes_every_sideband_with_a_close_frame_and_exits_0(
    simulator: Simulator, tmp_path: Path
) -> None:
    async with running_server(tmp_path, upstream=simulator.base_url) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            calls = [(await live_session(http, simulator))[1] for _ in range(3)]

        server.process.send_signal(signal.SIGTERM)
        assert await server.wait_exit() == 0, server.log_text()

    async with httpx.AsyncClient(timeout=5) as http:
        for call_id in calls:
            call = (await http.get(f"{simulator.url}/_sim/calls/{call_id}")).json()
            assert [(s["open"], s["closeCode"]) for s in call["sockets"]] == [(False, 1000)]
    log = server.log_text()
    assert "received SIGTERM, shutting down (grace 5 s)" in log
    assert "shut down: 3 sessions ended" in log


async def test_a_request_in_flight_finishes_in_the_grace_and_new_connections_are_refused(
    simulator: Simulator, tmp_path: Path
) -> None:
    minting = "/v1/realtime/client_secrets"
    answers: list[httpx.Response] = []
    async with (
        running_server(tmp_path, upstream=simulator.base_url) as server,
        httpx.AsyncClient(timeout=30) as control,
        httpx.AsyncClient(base_url=server.url, timeout=30) as http,
        trio.open_nursery() as nursery,
    ):

        async def minted_so_far() -> int:
            found = await control.get(f"{simulator.url}/_sim/requests", params={"path": minting})
            return len(found.json()["requests"])

        async def post_session() -> None:
            answers.append(await http.post("/session", json={}))

        async def upstream_has_it() -> bool:
            return await minted_so_far() > before

        before = await minted_so_far()
        armed = await control.post(
            f"{simulator.url}/_sim/faults", json={"path": minting, "delay_seconds": 2}
        )
        assert armed.status_code == 201, armed.text
        nursery.start_soon(post_session)
        await wait_until(upstream_has_it)

        server.process.send_signal(signal.SIGTERM)
        await server.wait_for_log("received SIGTERM")

        async def refused() -> bool:
            try:
                async with httpx.AsyncClient(base_url=server.url, timeout=5) as late:
                    await late.get("/healthz")
            except httpx.ConnectError:
                return True
            return False

        await wait_until(refused, seconds=1.5)
        assert not answers  # still in flight while new connections are refused
        assert await server.wait_exit() == 0, server.log_text()

    assert [a.status_code for a in answers] == [200]
    assert answers[0].json()["clientSecret"]
    assert "shut down: 1 sessions ended" in server.log_text()


@asynccontextmanager
async def silent_upstream() -> AsyncIterator[tuple[str, trio.socket.SocketType]]:
    """An upstream that accepts connections and never answers: (its base URL, its listener)."""
    with trio.socket.socket() as listener:
        await listener.bind(("127.0.0.1", 0))
        listener.listen()
        host, port = listener.getsockname()
        yield f"http://{host}:{port}/v1", listener


async def post_session_until_gone(http: httpx.AsyncClient) -> None:
    with contextlib.suppress(httpx.TransportError):  # cut off: the server went away
        await http.post("/session", json={})


async def test_a_second_signal_exits_at_once(tmp_path: Path) -> None:
    async with (
        silent_upstream() as (upstream, listener),
        # The request in flight would hold the shutdown for the whole grace.
        running_server(
            tmp_path, upstream=upstream, SHUTDOWN_GRACE_SECONDS="30", UPSTREAM_TIMEOUT_SECONDS="60"
        ) as server,
        httpx.AsyncClient(base_url=server.url, timeout=60) as http,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(post_session_until_gone, http)
        held, _ = await listener.accept()
        with held:
            server.process.send_signal(signal.SIGTERM)
            await server.wait_for_log("received SIGTERM, shutting down (grace 30 s)")
            server.process.send_signal(signal.SIGTERM)
            assert await server.wait_exit(5) == 128 + signal.SIGTERM

    log = server.log_text()
    assert "second signal: exiting now" in log
    assert "shut down:" not in log


async def test_sigint_cuts_off_what_outlasts_the_grace_and_exits_0(tmp_path: Path) -> None:
    async with (
        silent_upstream() as (upstream, listener),
        running_server(
            tmp_path, upstream=upstream, SHUTDOWN_GRACE_SECONDS="1", UPSTREAM_TIMEOUT_SECONDS="60"
        ) as server,
        httpx.AsyncClient(base_url=server.url, timeout=60) as http,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(post_session_until_gone, http)
        held, _ = await listener.accept()
        with held:
            server.process.send_signal(signal.SIGINT)
            assert await server.wait_exit() == 0, server.log_text()

    log = server.log_text()
    assert "received SIGINT, shutting down (grace 1 s)" in log
    assert "shut down: 0 sessions ended" in log
    assert "Traceback" not in log
