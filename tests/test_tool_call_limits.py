"""A session's tool calls, across the calls it is attached to and beyond its limits.

One router serves a session for its whole life: the limit on tool calls running at once holds
across attaches, an output still being made when the sideband is replaced reaches the call
over the new one, and a call beyond twice the limit still gets exactly one output.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import trio

from conftest import make_settings
from realtime_trio import Tool, ToolContext, hookimpl
from realtime_trio._plugins import load_plugins
from realtime_trio.simulator.validation import check_server_event
from sim_client import (
    FAST_RECONNECTS,
    SimControl,
    live_session_with_secret,
    wait_for_sideband,
    wait_until,
)


class SlowPlugin:
    """`slow` runs until the test releases it; `running` counts the handlers running."""

    name = "slow"

    def __init__(self) -> None:
        self.running = 0
        self.release = trio.Event()

    @hookimpl
    def rt_register_tools(self) -> list[Tool]:
        return [Tool("slow", "Takes its time.", self.slow)]

    async def slow(self, context: ToolContext, arguments: Any) -> dict[str, Any]:
        self.running += 1
        try:
            await self.release.wait()
        finally:
            self.running -= 1
        return {"ok": True, "slow": True}

    async def wait_running(self, n: int) -> None:
        with trio.fail_after(10):
            while self.running != n:  # noqa: ASYNC110 - in-process state, polled briefly
                await trio.sleep(0.01)


async def outputs(sim: SimControl, call_id: str) -> dict[str, list[Any]]:
    """Every function_call_output the call received, by function call id, in order."""
    answered: dict[str, list[Any]] = {}
    for event in await sim.client_events(call_id, "conversation.item.create"):
        item = event["item"]
        if item["type"] == "function_call_output":
            answered.setdefault(item["call_id"], []).append(json.loads(item["output"]))
    return answered


async def test_the_running_limit_holds_across_attaches(start_server: Any, sim: SimControl) -> None:
    plugin = SlowPlugin()
    url = await start_server(
        plugins=load_plugins(make_settings(), extra=[plugin]), session_max_pending_tool_calls=1
    )
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            session_id, first_call, _ = await live_session_with_secret(client, sim)
            await sim.drive(first_call, "tool-call", name="slow", wait=False)
            await plugin.wait_running(1)
            # The app renews and moves to a new call while the first call's tool still runs.
            renewed = await client.post("/session/renew", json={"sessionId": session_id})
            second_call = await sim.create_call(renewed.json()["clientSecret"])
            attached = await client.post(
                "/session/call", json={"sessionId": session_id, "callId": second_call}
            )
            assert attached.json()["sideband"] == {"state": "connected"}

            result = await sim.drive(second_call, "tool-call", name="slow")

            assert json.loads(result["output"])["reason"] == "busy"
            assert plugin.running == 1
    finally:
        plugin.release.set()


async def test_an_output_made_while_the_sideband_is_replaced_reaches_the_call(
    start_server: Any, sim: SimControl
) -> None:
    plugin = SlowPlugin()
    url = await start_server(
        plugins=load_plugins(make_settings(), extra=[plugin]),
        sideband_reconnect_attempts=0,
        **FAST_RECONNECTS,
    )
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            session_id, call_id, _ = await live_session_with_secret(client, sim)
            started = await sim.drive(call_id, "tool-call", name="slow", wait=False)
            await plugin.wait_running(1)
            await sim.drive(call_id, "drop")  # no reconnect allowed: the sideband fails
            await wait_for_sideband(client, session_id, "failed")
            # The app attaches the same call again: a new sideband on it.
            attached = await client.post(
                "/session/call", json={"sessionId": session_id, "callId": call_id}
            )
            assert attached.json()["sideband"] == {"state": "connected"}

            plugin.release.set()

            answered = await wait_until(
                lambda: _answered(sim, call_id, started["callId"]), seconds=10
            )
            assert answered == [{"ok": True, "slow": True}]
    finally:
        plugin.release.set()


async def _answered(sim: SimControl, call_id: str, function_call_id: str) -> list[Any] | None:
    return (await outputs(sim, call_id)).get(function_call_id)


def _function_call(response_id: str, n: int) -> dict[str, Any]:
    return {
        "id": f"item_slow_{n}",
        "object": "realtime.item",
        "type": "function_call",
        "status": "completed",
        "name": "slow",
        "call_id": f"call_slow_{n}",
        "arguments": "{}",
    }


def _response(response_id: str, status: str, output: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "object": "realtime.response",
        "id": response_id,
        "status": status,
        "status_details": None,
        "output": output,
        "conversation_id": "conv_limits",
        "output_modalities": ["audio"],
        "max_output_tokens": "inf",
        "metadata": None,
        "audio": {"output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin"}},
        "usage": None,
    }


def one_response_calling_slow(times: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The server events of one response that calls `slow` *times* times, and its
    `response.done` (held back, to send when the test wants the response to end)."""
    response_id = "resp_limits"
    calls = [_function_call(response_id, n) for n in range(times)]
    events: list[dict[str, Any]] = [
        {
            "type": "response.created",
            "event_id": "event_created",
            "response": _response(response_id, "in_progress", []),
        }
    ]
    for n, item in enumerate(calls):
        events.append(
            {
                "type": "response.function_call_arguments.done",
                "event_id": f"event_args_{n}",
                "response_id": response_id,
                "item_id": item["id"],
                "output_index": n,
                "call_id": item["call_id"],
                "name": item["name"],
                "arguments": item["arguments"],
            }
        )
        events.append(
            {
                "type": "response.output_item.done",
                "event_id": f"event_item_{n}",
                "response_id": response_id,
                "output_index": n,
                "item": item,
            }
        )
    done = {
        "type": "response.done",
        "event_id": "event_done",
        "response": _response(response_id, "completed", calls),
    }
    for event in [*events, done]:
        check_server_event(event)  # the real API's shapes, as the SDK declares them
    return events, done


async def test_a_call_beyond_twice_the_limit_still_gets_exactly_one_output(
    start_server: Any, sim: SimControl
) -> None:
    plugin = SlowPlugin()
    url = await start_server(
        plugins=load_plugins(make_settings(), extra=[plugin]), session_max_pending_tool_calls=1
    )
    events, done = one_response_calling_slow(3)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            _, call_id, _ = await live_session_with_secret(client, sim)
            # The first call runs, the second is answered busy, the third finds twice the
            # limit taken.
            for event in events:
                await sim.drive(call_id, "send", event=event)
            await plugin.wait_running(1)
            await sim.drive(call_id, "send", event=done)
            plugin.release.set()

            answered = await wait_until(lambda: _all_answered(sim, call_id, 3))

            assert answered["call_slow_0"] == [{"ok": True, "slow": True}]
            assert [o["reason"] for o in answered["call_slow_1"]] == ["busy"]
            assert [o["reason"] for o in answered["call_slow_2"]] == ["busy"]
            await wait_until(lambda: _response_creates(sim, call_id))
            assert len(await sim.client_events(call_id, "response.create")) == 1
    finally:
        plugin.release.set()


async def _all_answered(sim: SimControl, call_id: str, n: int) -> dict[str, list[Any]] | None:
    answered = await outputs(sim, call_id)
    return answered if len(answered) == n else None


async def _response_creates(sim: SimControl, call_id: str) -> list[dict[str, Any]]:
    return await sim.client_events(call_id, "response.create")
