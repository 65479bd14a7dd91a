"""`realtime-trio serve --workers N` as real processes: one port, N workers, each started again
when it dies, all gone when the supervisor is.

The supervisor logs to a file, and the workers share that file. The port is read from the
supervisor's start line, because it binds port 0. The workers are the supervisor's children,
found in /proc. The upstream is a loopback port where nothing listens, which is enough for
`/healthz`.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import trio

from realtime_trio.simulator import DEFAULT_API_KEY, RunningSimulator
from sim_client import SimControl, wait_until

COMMAND = [sys.executable, "-m", "realtime_trio"]
STARTED = re.compile(r"(\d+) workers on (\S+):(\d+)")
STARTUP_SECONDS = 30.0
EXIT_SECONDS = 20.0  # far above a clean shutdown's time: exceeding it means something hung
NEEDS_STORE = (
    "realtime-trio: --workers needs STORE_URL (a shared Valkey store); with memory:// each "
    "worker would hold its own sessions\n"
)


@dataclass
class Supervisor:
    """A `serve --workers` process, its URL and log, and every worker pid seen so far."""

    process: trio.Process
    url: str
    log: Path
    seen: set[int] = field(default_factory=set)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def workers(self) -> set[int]:
        """The pids of the supervisor's live children (zombies, not yet reaped, left out)."""
        pids = set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with suppress(OSError):
                # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")".
                state, ppid = stat.read_text().rpartition(")")[2].split()[:2]
                if int(ppid) == self.process.pid and state != "Z":
                    pids.add(int(stat.parent.name))
        self.seen |= pids
        return pids

    async def wait_for_workers(self, count: int) -> set[int]:
        """Once *count* workers run and have logged that they listen, return their pids."""

        async def ready() -> set[int] | None:
            pids = self.workers()
            listening = self.log_text().count("Running on http://")
            return pids if len(pids) == count and listening >= count else None

        result: set[int] = await wait_until(ready, seconds=STARTUP_SECONDS)
        return result


@asynccontextmanager
async def supervised(
    tmp_path: Path, store_url: str, *, workers: int = 2, **settings: str
) -> AsyncIterator[Supervisor]:
    """`realtime-trio serve --workers N` in *tmp_path*, where there is no `.env`, on a free
    port. The block begins once every worker listens. At its end the supervisor and every
    worker seen are killed, if they still run."""
    env = {
        "OPENAI_API_KEY": "sk-test-dummy-key-for-workers",
        "OPENAI_BASE_URL": f"http://127.0.0.1:{_unused_port()}/v1",
        "PATH": os.environ.get("PATH", ""),
        "HOST": "127.0.0.1",
        "PORT": "0",
        "STORE_URL": store_url,
        "STORE_KEY_PREFIX": f"test:{uuid.uuid4().hex}:",
        "PLUGIN_ENTRY_POINTS": "false",
        **settings,
    }
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        process = await trio.lowlevel.open_process(
            [*COMMAND, "serve", "--workers", str(workers)],
            cwd=tmp_path,
            env=env,
            stdout=output,
            stderr=output,
        )
    supervisor = None
    try:
        with trio.fail_after(STARTUP_SECONDS):
            while (match := STARTED.search(log.read_text(errors="replace"))) is None:
                assert process.returncode is None, log.read_text()
                await trio.sleep(0.02)
        supervisor = Supervisor(process, f"http://{match[2]}:{match[3]}", log)
        await supervisor.wait_for_workers(workers)
        yield supervisor
    finally:
        leftovers = supervisor.workers() | supervisor.seen if supervisor else set()
        process.kill()
        for pid in leftovers:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with trio.CancelScope(shield=True):
            await process.wait()


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def healthz(url: str) -> int:
    """`GET /healthz` on a connection of its own: a stopped or dead worker holds none."""
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:
        return (await http.get("/healthz")).status_code


def gone(pid: int) -> bool:
    """The process has exited (reaped, or a zombie nobody reaped yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True


def test_workers_without_a_shared_store_refuse_to_start_with_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [*COMMAND, "serve", "--workers", "2"],
        cwd=tmp_path,
        env={"OPENAI_API_KEY": "sk-test-dummy", "HOST": "127.0.0.1", "PORT": "0"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert (result.returncode, result.stdout, result.stderr) == (2, "", NEEDS_STORE)


def test_workers_must_be_at_least_one(tmp_path: Path) -> None:
    result = subprocess.run(
        [*COMMAND, "serve", "--workers", "0"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    assert "--workers: must be a whole number from 1 up, not '0'" in result.stderr


async def test_every_worker_answers_on_the_one_port(tmp_path: Path, valkey_url: str) -> None:
    async with supervised(tmp_path, valkey_url, workers=2) as supervisor:
        first, second = sorted(supervisor.workers())
        # With one worker stopped, the other takes every connection from the shared socket.
        for stopped in (first, second):
            os.kill(stopped, signal.SIGSTOP)
            try:
                with trio.fail_after(10):
                    assert [await healthz(supervisor.url) for _ in range(3)] == [200] * 3
            finally:
                os.kill(stopped, signal.SIGCONT)

    assert "2 workers on 127.0.0.1:" in supervisor.log_text().splitlines()[0]


async def test_a_killed_worker_is_started_again_while_the_port_keeps_answering(
    tmp_path: Path, valkey_url: str
) -> None:
    async with supervised(tmp_path, valkey_url, workers=2) as supervisor:
        before = supervisor.workers()
        victim = min(before)
        assert await healthz(supervisor.url) == 200
        os.kill(victim, signal.SIGKILL)
        # One request after another, each on a new connection, until the new worker listens.
        answers = []
        with trio.fail_after(STARTUP_SECONDS):
            while not (restarted := supervisor.workers() - before) or (
                supervisor.log_text().count("Running on http://") < 3
            ):
                answers.append(await healthz(supervisor.url))
        after = supervisor.workers()

    assert set(answers) == {200}
    assert len(restarted) == 1
    assert after == (before - {victim}) | restarted
    assert f"(pid {victim}) was killed by SIGKILL; starting it again in 0.5 s" in (
        supervisor.log_text()
    )


async def test_sigterm_stops_every_worker_and_the_supervisor_exits_0(
    tmp_path: Path, valkey_url: str
) -> None:
    async with supervised(tmp_path, valkey_url, workers=2) as supervisor:
        workers = supervisor.workers()
        supervisor.process.send_signal(signal.SIGTERM)
        with trio.fail_after(EXIT_SECONDS):
            status = await supervisor.process.wait()

    assert status == 0, supervisor.log_text()
    assert all(gone(pid) for pid in workers)
    log = supervisor.log_text()
    assert "received SIGTERM, stopping the workers" in log
    assert log.count("received SIGTERM, shutting down") == 2  # each worker's graceful stop
    assert "starting it again" not in log


async def test_workers_leave_when_the_supervisor_is_killed(tmp_path: Path, valkey_url: str) -> None:
    async with supervised(tmp_path, valkey_url, workers=2) as supervisor:
        workers = supervisor.workers()
        supervisor.process.kill()
        await supervisor.process.wait()

        async def all_gone() -> bool:
            return all(gone(pid) for pid in workers)

        await wait_until(all_gone, seconds=EXIT_SECONDS)

    assert supervisor.log_text().count("the supervisor is gone: shutting down") == 2


async def test_a_second_signal_kills_the_workers_at_once(tmp_path: Path, valkey_url: str) -> None:
    async with supervised(tmp_path, valkey_url, workers=2) as supervisor:
        workers = supervisor.workers()
        stuck = min(workers)
        os.kill(stuck, signal.SIGSTOP)  # a worker that would never finish its shutdown
        supervisor.process.send_signal(signal.SIGTERM)

        async def stopping() -> bool:
            return "stopping the workers" in supervisor.log_text()

        await wait_until(stopping)
        supervisor.process.send_signal(signal.SIGTERM)
        with trio.fail_after(EXIT_SECONDS):
            status = await supervisor.process.wait()

    assert status == 128 + signal.SIGTERM, supervisor.log_text()
    assert all(gone(pid) for pid in workers)
    assert "second signal (SIGTERM): killing the workers" in supervisor.log_text()


async def _served_by(url: str, method: str, path: str, **body: Any) -> tuple[str, httpx.Response]:
    """Which worker answers *method* *path*, and its answer: asked on one new connection,
    first `/readyz` (which names the worker), then the request itself."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        ready = await http.get("/readyz")
        assert ready.status_code == 200, ready.text
        return ready.json()["replica"], await http.request(method, path, **body)


async def test_one_session_is_served_through_both_workers(
    tmp_path: Path, valkey_url: str, simulator: RunningSimulator, sim: SimControl
) -> None:
    async with supervised(
        tmp_path,
        valkey_url,
        workers=2,
        OPENAI_API_KEY=DEFAULT_API_KEY,
        OPENAI_BASE_URL=simulator.base_url,
    ) as supervisor:
        made_on, created = await _served_by(
            supervisor.url, "POST", "/session", json={"enableTranscription": True}
        )
        assert created.status_code == 200, created.text
        session_id = created.json()["sessionId"]
        call_id = await sim.create_call(created.json()["clientSecret"])
        await sim.drive(call_id, "replies", text="Hello Ada!")

        # New connections land on either worker: use the session through each in turn.
        answered_by: dict[str, list[int]] = {}
        attached = False
        with trio.fail_after(60):
            while len(answered_by) < 2 or not attached:
                worker, answer = await _served_by(
                    supervisor.url,
                    "POST",
                    "/session/call",
                    json={"sessionId": session_id, "callId": call_id},
                )
                answered_by.setdefault(worker, []).append(answer.status_code)
                attached = attached or (worker != made_on and answer.status_code == 200)
        assert made_on in answered_by
        assert len(answered_by) == 2
        assert all(status == 200 for statuses in answered_by.values() for status in statuses)

        await sim.drive(call_id, "user", text="Hi, I'm Ada Lovelace.")
        spoken = ["Hi, I'm Ada Lovelace.", "Hello Ada!"]
        seen_by: set[str] = set()
        with trio.fail_after(60):
            while len(seen_by) < 2:
                worker, answer = await _served_by(supervisor.url, "GET", f"/session/{session_id}")
                entries = answer.json()["transcript"]
                if [e["text"] for e in entries if e["status"] == "complete"] == spoken:
                    seen_by.add(worker)
        assert seen_by == set(answered_by)


async def test_one_scrape_of_metrics_sees_every_worker(tmp_path: Path, valkey_url: str) -> None:
    async with supervised(tmp_path, valkey_url, workers=2) as supervisor:
        answered: dict[str, int] = {}
        with trio.fail_after(60):
            while len(answered) < 2:  # new connections, until both workers answered
                worker, answer = await _served_by(supervisor.url, "GET", "/healthz")
                assert answer.status_code == 200
                answered[worker] = answered.get(worker, 0) + 1
        scraped = set()
        with trio.fail_after(60):
            while len(scraped) < 2:  # a scrape from either worker counts both workers' requests
                worker, answer = await _served_by(supervisor.url, "GET", "/metrics")
                counted = sum(
                    float(line.rpartition(" ")[2])
                    for line in answer.text.splitlines()
                    if line.startswith("realtime_trio_http_requests_total{")
                    and 'route="/healthz"' in line
                )
                assert counted == sum(answered.values()), answered
                scraped.add(worker)
