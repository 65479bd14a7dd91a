"""Ending and starting sessions leaves nothing half-done, whatever the caller or a tool does.

A session is ended even when the client asking for it hangs up midway; ending it never holds
its caller longer than a bound, even when a tool ignores cancellation; and a session that
could not start is left in neither the live table nor the store.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import trio

from conftest import make_settings
from freezable_proxy import FreezableProxy
from realtime_trio import Tool, ToolContext, hookimpl
from realtime_trio._errors import ShuttingDown
from realtime_trio._fresh_tasks import TaskNotStarted, start_fresh
from realtime_trio._live_session import ENDING_BOUND_SECONDS
from realtime_trio._plugins import load_plugins
from realtime_trio._sessions import SessionManager, SessionOptions
from realtime_trio._store import MemorySessionStore
from realtime_trio._upstream import OpenAIClient
from realtime_trio.simulator import DEFAULT_API_KEY, RunningSimulator
from sim_client import SimControl, live_session, open_sockets, wait_until


async def session_is_gone(client: httpx.AsyncClient, session_id: str) -> bool:
    return (await client.get(f"/session/{session_id}")).status_code == 404


async def test_a_client_that_hangs_up_during_delete_still_ends_the_session(
    start_server: Any, simulator: RunningSimulator, sim: SimControl, nursery: trio.Nursery
) -> None:
    proxy = FreezableProxy(int(simulator.url.rsplit(":", 1)[1]))
    port = await nursery.start(proxy.run)
    url = await start_server(openai_base_url=f"http://127.0.0.1:{port}/v1")
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        session_id, call_id = await live_session(client, sim)
        # Upstream goes quiet: the sideband's close handshake cannot finish, so the DELETE is
        # still closing the sideband when its client gives up and hangs up.
        proxy.freeze()
        with pytest.raises(httpx.ReadTimeout):
            await client.delete(f"/session/{session_id}", timeout=0.5)
        proxy.thaw()

        await wait_until(lambda: session_is_gone(client, session_id))
        await wait_until(lambda: no_open_socket(sim, call_id))


async def no_open_socket(sim: SimControl, call_id: str) -> bool:
    return not open_sockets(await sim.call(call_id))


class StubbornPlugin:
    """A tool that ignores cancellation until the test lets it go."""

    name = "stubborn"

    def __init__(self) -> None:
        self.running = trio.Event()
        self.release = trio.Event()

    @hookimpl
    def rt_register_tools(self) -> list[Tool]:
        return [Tool("stubborn", "Ignores cancellation.", self.stubborn)]

    async def stubborn(self, context: ToolContext, arguments: Any) -> dict[str, Any]:
        self.running.set()
        with trio.CancelScope(shield=True):
            await self.release.wait()
        return {"ok": True}


async def test_ending_a_session_is_bounded_even_when_a_tool_ignores_cancellation(
    start_server: Any, sim: SimControl
) -> None:
    plugin = StubbornPlugin()
    url = await start_server(plugins=load_plugins(make_settings(), extra=[plugin]))
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            session_id, call_id = await live_session(client, sim)
            await sim.drive(call_id, "tool-call", name="stubborn", wait=False)
            await plugin.running.wait()

            with trio.fail_after(ENDING_BOUND_SECONDS + 5):
                ended = await client.delete(f"/session/{session_id}")

            assert ended.status_code == 204
            assert await session_is_gone(client, session_id)
    finally:
        plugin.release.set()  # so the server can shut down


async def test_a_session_whose_task_cannot_start_leaves_nothing_behind(
    simulator: RunningSimulator,
) -> None:
    settings = make_settings(openai_api_key=DEFAULT_API_KEY, openai_base_url=simulator.base_url)
    store = MemorySessionStore()
    async with OpenAIClient(settings) as upstream:
        manager = SessionManager(
            settings, upstream=upstream, store=store, plugins=load_plugins(settings)
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(manager.run)
            nursery.cancel_scope.cancel()  # the server is shutting down

        with pytest.raises(ShuttingDown):
            await manager.create(SessionOptions())

        assert len(manager) == 0
        assert await store.count() == 0


async def test_starting_in_a_nursery_cancelled_first_raises_rather_than_returning_none(
    nursery: trio.Nursery,
) -> None:
    release = trio.Event()

    async def shielded_cleanup() -> None:
        with trio.CancelScope(shield=True):
            await release.wait()

    async def hold(*, task_status: trio.TaskStatus[trio.Nursery]) -> None:
        async with trio.open_nursery() as held:
            held.start_soon(shielded_cleanup)
            task_status.started(held)

    async def service(*, task_status: trio.TaskStatus[str]) -> None:
        await trio.lowlevel.checkpoint()
        task_status.started("ready")
        await trio.sleep_forever()

    held = await nursery.start(hold)
    held.cancel_scope.cancel()  # cancelled, but still open while its cleanup runs
    try:
        with pytest.raises(TaskNotStarted):
            await start_fresh(held, service)
    finally:
        release.set()
