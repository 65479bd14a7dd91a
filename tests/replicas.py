"""Replicas as real processes: `realtime-trio serve` several times over, on one shared store,
with the test's simulator as their upstream.

Each replica logs to a file of its own (read for its port and, when a test fails, shown). A
replica is killed, paused, resumed, stopped and started again as an operator would do it:
with signals.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import trio

from realtime_trio.simulator import DEFAULT_API_KEY

COMMAND = [sys.executable, "-m", "realtime_trio", "serve"]
RUNNING = re.compile(r"Running on (http://\S+)")
STARTUP_SECONDS = 30.0
EXIT_SECONDS = 20.0

# Quick to notice a dead replica, still far above a renewal's time on a busy machine.
LEASE_SECONDS = 1.5


@dataclass
class Replica:
    """One `realtime-trio serve` process."""

    name: str
    env: dict[str, str]
    log: Path
    process: trio.Process | None = None
    url: str = ""
    http: httpx.AsyncClient = field(init=False)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    async def start(self) -> None:
        """Start it (again): a new incarnation under the same name."""
        if self.url:
            await self.http.aclose()
        offset = len(self.log_text())
        with self.log.open("ab") as output:
            self.process = await trio.lowlevel.open_process(
                COMMAND, env=self.env, stdout=output, stderr=output, cwd=self.log.parent
            )
        with trio.fail_after(STARTUP_SECONDS):
            while (match := RUNNING.search(self.log_text()[offset:])) is None:
                assert self.process.returncode is None, self.log_text()
                await trio.sleep(0.02)
        self.url = match[1]
        self.http = httpx.AsyncClient(base_url=self.url, timeout=30)

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    async def stopped(self) -> int:
        """SIGTERM, as a rolling deploy does; the exit status."""
        self.signal(signal.SIGTERM)
        return await self.exited()

    async def exited(self) -> int:
        assert self.process is not None
        with trio.fail_after(EXIT_SECONDS):
            return await self.process.wait()

    async def close(self) -> None:
        if self.process is not None and self.process.returncode is None:
            with suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGCONT)
                self.process.kill()
            with trio.CancelScope(shield=True):
                await self.process.wait()
        if self.url:
            await self.http.aclose()


@asynccontextmanager
async def running_replicas(
    tmp_path: Path,
    *,
    count: int,
    store_url: str,
    prefix: str,
    upstream: str,
    **settings: Any,
) -> AsyncIterator[list[Replica]]:
    """*count* replicas named `replica-1`, `replica-2`, ... on *store_url* under *prefix*, with
    *upstream* (the simulator's `/v1` URL) as OpenAI; *settings* as upper-case variables."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "OPENAI_API_KEY": DEFAULT_API_KEY,
        "OPENAI_BASE_URL": upstream,
        "HOST": "127.0.0.1",
        "PORT": "0",
        "STORE_URL": store_url,
        "STORE_KEY_PREFIX": prefix,
        "SIDEBAND_LEASE_SECONDS": str(LEASE_SECONDS),
        "PLUGIN_ENTRY_POINTS": "false",
        "SHUTDOWN_GRACE_SECONDS": "2",
        "LOG_LEVEL": "INFO",
        **{name.upper(): str(value) for name, value in settings.items()},
    }
    replicas = [
        Replica(
            f"replica-{n}", {**env, "REPLICA_ID": f"replica-{n}"}, tmp_path / f"replica-{n}.log"
        )
        for n in range(1, count + 1)
    ]
    async with AsyncExitStack() as stack:
        for replica in replicas:
            stack.push_async_callback(replica.close)
        async with trio.open_nursery() as nursery:
            for replica in replicas:
                nursery.start_soon(replica.start)
        try:
            yield replicas
        except BaseException as exc:
            for replica in replicas:  # shown with the failure
                exc.add_note(f"----- {replica.name} -----\n{replica.log_text()}")
            raise
