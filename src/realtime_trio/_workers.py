"""`serve --workers N`: one listening socket, N server processes accepting on it, each one
started again when it dies.

Hypercorn's own `workers` setting is ignored by `hypercorn.trio.serve`, so supervising the
processes is our job. The supervisor binds the socket and runs N `realtime-trio serve
--listen-fd FD` children. Each child is a full replica on the shared store. The supervisor
itself never opens the store and never serves HTTP.

Every child runs in a process group of its own. A terminal's Ctrl-C therefore reaches only
the supervisor, which forwards one SIGTERM to each child. If the children also got the
Ctrl-C, the forwarded SIGTERM would be their second signal, and they would exit at once
instead of shutting down gracefully.

Each child also holds a lifeline: the read end of a pipe whose write end only the supervisor
holds. The kernel closes that write end however the supervisor dies, SIGKILL included. The
child then sees the pipe close and shuts down as it would on SIGTERM. Without the lifeline,
orphaned workers would keep serving the port with no supervisor, and they would hold it
against the next one.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import tempfile
from collections.abc import Awaitable, Callable
from functools import partial

import trio
from prometheus_client import multiprocess

from ._config import Settings
from ._hypercorn import LISTEN_BACKLOG, ShutdownTrigger
from ._metrics import MULTIPROCESS_DIR
from ._version import __version__

logger = logging.getLogger("realtime_trio.workers")

RESTART_BACKOFF_SECONDS = 0.5
RESTART_MAX_BACKOFF_SECONDS = 10.0
# A worker that ran this long before it died starts again after the first backoff, not the last.
STABLE_SECONDS = 30.0
# On top of a worker's own shutdown grace: for its sessions to end and its sidebands to close
# before it is killed.
STOP_MARGIN_SECONDS = 15.0


def run_workers(settings: Settings, listener: socket.socket, *, workers: int) -> int:
    """Supervise *workers* processes on *listener* (`supervise`), with a lifeline made for
    them; return the exit status. Closing *listener* is left to the caller."""
    lifeline, held_end = os.pipe()
    try:
        # Each worker's metrics go to files here, so that any worker's /metrics sees them all.
        with tempfile.TemporaryDirectory(prefix="realtime-trio-metrics-") as metrics_dir:
            run = partial(
                supervise,
                settings,
                listener,
                lifeline=lifeline,
                workers=workers,
                metrics_dir=metrics_dir,
            )
            return trio.run(run)
    finally:
        os.close(lifeline)
        os.close(held_end)


def open_listener(host: str, port: int) -> socket.socket:
    """A TCP socket bound to *host*:*port* and listening, the way Hypercorn binds its own.

    The socket is not inheritable. `pass_fds` hands it to each worker, and no other child
    gets it.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


async def supervise(
    settings: Settings,
    listener: socket.socket,
    *,
    lifeline: int,
    workers: int,
    metrics_dir: str | None = None,
) -> int:
    """Run *workers* server processes on *listener* until SIGINT or SIGTERM; return the exit
    status.

    A worker that exits while the supervisor is not stopping is started again after a backoff.
    On the first signal, each worker gets SIGTERM and `shutdown_grace_seconds` plus
    `STOP_MARGIN_SECONDS` to exit; a worker still running after that is killed. The result is
    0 if every worker exited 0, and 1 otherwise. A second signal kills the workers at once,
    and the result is then 128 + the signal's number.

    Each worker inherits *lifeline*, the read end of a pipe whose write end the caller holds
    (`stop_with_supervisor`). Closing *listener* and the pipe is left to the caller.
    """
    host, port = listener.getsockname()[:2]
    supervisor = _Supervisor(
        settings,
        command=[
            *(sys.executable, "-m", "realtime_trio", "serve", "--host", host, "--port", str(port)),
            *("--listen-fd", str(listener.fileno()), "--lifeline-fd", str(lifeline)),
        ],
        pass_fds=(listener.fileno(), lifeline),
        metrics_dir=metrics_dir,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.watch_signals)
        logger.info("realtime-trio %s: %d workers on %s:%d", __version__, workers, host, port)
        async with trio.open_nursery() as workers_nursery:
            for slot in range(workers):
                workers_nursery.start_soon(supervisor.keep_running, slot)
        nursery.cancel_scope.cancel()
    if supervisor.killed_by is not None:
        return 128 + supervisor.killed_by
    return 0 if all(status == 0 for status in supervisor.last_statuses.values()) else 1


async def stop_with_supervisor(
    run: Callable[..., Awaitable[object]], *, lifeline: int, shutdown_trigger: ShutdownTrigger
) -> None:
    """Await `run(shutdown_trigger=...)` in a worker. The trigger returns when
    *shutdown_trigger* does, or when the supervisor is gone (its end of *lifeline* closed),
    whichever happens first."""

    async def either() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_then_cancel, shutdown_trigger, nursery.cancel_scope)
            nursery.start_soon(
                _then_cancel, partial(_supervisor_gone, lifeline), nursery.cancel_scope
            )

    await run(shutdown_trigger=either)


async def _then_cancel(wait: ShutdownTrigger, scope: trio.CancelScope) -> None:
    await wait()
    scope.cancel()


async def _supervisor_gone(lifeline: int) -> None:
    # Nobody writes to the pipe: it becomes readable only at its end, once no writer is left.
    await trio.lowlevel.wait_readable(lifeline)
    logger.warning("the supervisor is gone: shutting down")


class _Supervisor:
    """What the workers share: the command, the stop and kill events, and how each exited."""

    def __init__(
        self,
        settings: Settings,
        *,
        command: list[str],
        pass_fds: tuple[int, ...],
        metrics_dir: str | None = None,
    ) -> None:
        self.settings = settings
        self.metrics_dir = metrics_dir
        self.command = command
        self.pass_fds = pass_fds
        self.stop_seconds = settings.shutdown_grace_seconds + STOP_MARGIN_SECONDS
        self.stopping = trio.Event()
        self.killing = trio.Event()
        self.killed_by: int | None = None
        self.last_statuses: dict[int, int] = {}

    async def watch_signals(self, *, task_status: trio.TaskStatus[None]) -> None:
        """The first SIGINT or SIGTERM stops the workers and the second kills them. Runs until
        cancelled."""
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            async for signum in signals:
                name = signal.Signals(signum).name
                if not self.stopping.is_set():
                    logger.info("received %s, stopping the workers", name)
                    self.stopping.set()
                elif not self.killing.is_set():
                    logger.warning("second signal (%s): killing the workers", name)
                    self.killed_by = signum
                    self.killing.set()

    async def keep_running(self, slot: int) -> None:
        """Run worker *slot* until stopping, starting it again each time it dies."""
        backoff = RESTART_BACKOFF_SECONDS
        while not self.stopping.is_set():
            started_at = trio.current_time()
            pid, status = await self._run_once(slot)
            self.last_statuses[slot] = status
            if self.metrics_dir is not None:  # its live gauges no longer count
                multiprocess.mark_process_dead(pid, self.metrics_dir)  # type: ignore[no-untyped-call]
            if self.stopping.is_set():
                return
            if trio.current_time() - started_at >= STABLE_SECONDS:
                backoff = RESTART_BACKOFF_SECONDS
            logger.warning(
                "worker %d (pid %d) %s; starting it again in %g s",
                slot,
                pid,
                _describe(status),
                backoff,
            )
            with trio.move_on_after(backoff):
                await self.stopping.wait()
            backoff = min(backoff * 2, RESTART_MAX_BACKOFF_SECONDS)

    async def _run_once(self, slot: int) -> tuple[int, int]:
        """Start worker *slot*; once it has exited, return its pid and exit status.

        If this task is cancelled, the worker is killed and reaped first.
        """
        process = await trio.lowlevel.open_process(
            self.command, env=self._env(slot), pass_fds=self.pass_fds, process_group=0
        )
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._stop_when_asked, process)
                status = await process.wait()
                nursery.cancel_scope.cancel()
        finally:
            if process.returncode is None:
                process.kill()
                with trio.CancelScope(shield=True):
                    await process.wait()
        return process.pid, status

    async def _stop_when_asked(self, process: trio.Process) -> None:
        await self.stopping.wait()
        process.terminate()
        with trio.move_on_after(self.stop_seconds):
            await self.killing.wait()
        if process.returncode is None and not self.killing.is_set():
            logger.warning(
                "worker pid %d still running %g s after SIGTERM: killing it",
                process.pid,
                self.stop_seconds,
            )
        process.kill()

    def _env(self, slot: int) -> dict[str, str]:
        """The worker's environment: the supervisor's own, with the shared metrics directory,
        and if `REPLICA_ID` is set, `<REPLICA_ID>-w<slot>`, so the workers' names stay
        distinct."""
        env = dict(os.environ)
        if self.metrics_dir is not None:
            env[MULTIPROCESS_DIR] = self.metrics_dir
        if self.settings.replica_id is not None:
            env["REPLICA_ID"] = f"{self.settings.replica_id}-w{slot}"
        return env


def _describe(status: int) -> str:
    if status < 0:
        return f"was killed by {signal.Signals(-status).name}"
    return f"exited with status {status}"
