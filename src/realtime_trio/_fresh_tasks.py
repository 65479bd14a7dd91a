"""Starting a session's long-lived tasks from a request without keeping the request alive.

Trio gives a new task a copy of its spawner's context, and Quart keeps the request (its body,
its stream, its app and request contexts) in context variables. A session task started while
serving `POST /session` would hold all of that for as long as the session lives, several KiB
per live session. These start tasks in a fresh, empty context instead (Trio itself keeps no
state in context variables).
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from typing import Any

import trio


def start_soon_fresh(
    nursery: trio.Nursery, async_fn: Callable[..., Awaitable[object]], *args: object
) -> None:
    """`nursery.start_soon(async_fn, *args)`, the task in a fresh context."""
    contextvars.Context().run(nursery.start_soon, async_fn, *args)


class TaskNotStarted(RuntimeError):
    """The nursery was closed, or cancelled, before the task could start."""


async def start_fresh(
    nursery: trio.Nursery, async_fn: Callable[..., Awaitable[object]], *args: object
) -> Any:
    """`await nursery.start(async_fn, *args)`, the task in a fresh context.

    A starter task (itself in a fresh context) makes the `start` call, so the new task inherits
    its context; an error before `task_status.started()` is raised here, as `start` would.

    Raises:
        TaskNotStarted: *nursery* is closed, or was cancelled before the task called
            `started()` (its `Cancelled` belongs to the nursery, not to the caller).
    """
    started = trio.Event()
    outcome: dict[str, Any] = {}

    async def starter() -> None:
        try:
            outcome["value"] = await nursery.start(async_fn, *args)
        except Exception as exc:
            outcome["error"] = exc
        finally:
            started.set()

    try:
        start_soon_fresh(nursery, starter)
    except RuntimeError as exc:  # "Nursery is closed to new arrivals"
        raise TaskNotStarted(f"{async_fn.__qualname__} not started: {exc}") from None
    await started.wait()
    if "error" in outcome:
        raise outcome["error"]
    if "value" not in outcome:
        raise TaskNotStarted(
            f"{async_fn.__qualname__} not started: its nursery was cancelled first"
        )
    return outcome["value"]
