"""The fields a log line carries from where it was logged: `request_id`, `session_id`, `call_id`.

Log calls across the package stay as they are (`logger.info("session %s: ...", session_id)`).
Instead, a request's middleware and a session's task bind their ids once (`bind_log_fields`),
in a context variable every task they start inherits, and the JSON log handler reads them
(`log_fields`) when a line is logged. Text lines show none of them, so text mode never reads
them.

A session's long-lived tasks start in a fresh, empty context (`_fresh_tasks`), so a task's own
context is not enough: `log_fields` also takes the fields bound by the tasks that enclose it in
Trio's task tree (the sideband's task sits in its session's nursery, under the session's task).
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import trio

T = TypeVar("T")

_NONE: Mapping[str, str] = {}
_FIELDS: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "realtime_trio_log_fields", default=_NONE
)


def bind_log_fields(**fields: str) -> contextvars.Token[Mapping[str, str]]:
    """Add *fields* to the log lines of this task and of every task it starts from now on;
    returns the token that undoes it (`unbind_log_fields`)."""
    return _FIELDS.set({**_FIELDS.get(), **fields})


def unbind_log_fields(token: contextvars.Token[Mapping[str, str]]) -> None:
    """Undo the `bind_log_fields` that returned *token*."""
    _FIELDS.reset(token)


def with_log_fields(
    async_fn: Callable[..., Awaitable[T]], **fields: str
) -> Callable[..., Awaitable[T]]:
    """*async_fn*, binding *fields* first: for a task started in a fresh context (`start_fresh`)
    whose lines should say what it works on (the sideband: its call)."""

    @functools.wraps(async_fn)
    async def bound(*args: Any, **kwargs: Any) -> T:
        bind_log_fields(**fields)  # the task's own context, gone with it
        return await async_fn(*args, **kwargs)

    return bound


def log_fields() -> dict[str, str]:
    """The fields bound in this context and by the tasks enclosing this one; the nearest binding
    of a field wins. Outside Trio (another thread), this context's only."""
    found = dict(_FIELDS.get())
    try:
        task = trio.lowlevel.current_task()
    except RuntimeError:
        return found
    nursery = task.parent_nursery
    while nursery is not None:
        task = nursery.parent_task
        for key, value in task.context.get(_FIELDS, _NONE).items():
            found.setdefault(key, value)
        nursery = task.parent_nursery
    return found
