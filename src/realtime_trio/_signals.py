"""Stop signals: the first SIGINT or SIGTERM shuts down gracefully, a second exits at once."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Awaitable, Callable
from functools import partial
from typing import NoReturn

import trio

from ._hypercorn import DEFAULT_GRACE_SECONDS

logger = logging.getLogger("realtime_trio.serve")


async def run_until_signalled(
    run: Callable[..., Awaitable[object]], *, grace_seconds: float = DEFAULT_GRACE_SECONDS
) -> None:
    """Await `run(shutdown_trigger=...)`, the trigger returning on the first SIGINT or SIGTERM.

    The signals are watched from before *run* starts until it returns, so a second one during
    the shutdown exits the process at once (`watch_stop_signals`). *grace_seconds* is only
    logged: it is *run*'s to honour.
    """
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(watch_stop_signals, stop, grace_seconds=grace_seconds))
        await run(shutdown_trigger=stop.wait)
        nursery.cancel_scope.cancel()


async def watch_stop_signals(
    stop: trio.Event,
    *,
    grace_seconds: float,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Set *stop* on the first SIGINT or SIGTERM (the Ctrl-C and `docker stop` paths); on a
    second one, exit the process at once (`_exit_now`).

    Runs until cancelled; while it runs, neither signal raises `KeyboardInterrupt`.
    """
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        async for signum in signals:
            if stop.is_set():
                _exit_now(signum)
            logger.info(
                "received %s, shutting down (grace %g s)",
                signal.Signals(signum).name,
                grace_seconds,
            )
            stop.set()


def _exit_now(signum: int) -> NoReturn:
    """End the process with status 128 + *signum*, the status a shell reports for a process
    the signal killed, without unwinding anything.

    Cancellation cannot do this: it waits for shielded work (a close frame being sent, a
    session's store cleanup, Hypercorn's shielded writes to a slow client), and the operator
    who signals twice has asked not to wait. The kernel closes the sockets; log records still
    queued would be lost, so the handlers are flushed first.
    """
    logger.warning("second signal: exiting now")
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(128 + signum)
