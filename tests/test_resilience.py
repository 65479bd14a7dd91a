"""What a session survives and what it lets go of: drops, floods, idleness, long calls, churn."""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

import httpx
import pytest
import trio
from pydantic import BaseModel

from conftest import make_settings
from realtime_trio import Tool, ToolContext, hookimpl
from realtime_trio._plugins import load_plugins
from realtime_trio.simulator.turns import DEFAULT_REPLY
from sim_client import (
    FAST_RECONNECTS,
    SimControl,
    all_tasks,
    live_session,
    new_session,
    open_sockets,
    scrape,
    session_state,
    sockets_opened,
    wait_for_sideband,
    wait_until,
)

CHURN = 2000


class Echo(BaseModel):
    text: str
    seconds: float = 0.0


class EchoPlugin:
    """A tool that takes a while and says back what it was given."""

    name = "echo"

    def __init__(self) -> None:
        self.release = trio.Event()
        self.waiting = 0

    @hookimpl
    def rt_register_tools(self) -> list[Tool]:
        return [
            Tool("echo", "Says the text back.", self.echo, parameters=Echo),
            Tool("wait_for_release", "Waits until the test says so.", self.wait_for_release),
        ]

    async def echo(self, context: ToolContext, arguments: Echo) -> dict[str, Any]:
        await trio.sleep(arguments.seconds)
        return {"ok": True, "echo": arguments.text}

    async def wait_for_release(self, context: ToolContext, arguments: Any) -> dict[str, Any]:
        self.waiting += 1
        await self.release.wait()
        return {"ok": True}


@pytest.fixture
def echo() -> EchoPlugin:
    return EchoPlugin()


async def start_with_echo(start_server: Any, echo: EchoPlugin, **settings: Any) -> str:
    return await start_server(plugins=load_plugins(make_settings(), extra=[echo]), **settings)


def outputs_by_call(events: list[dict[str, Any]]) -> Counter[str]:
    return Counter(
        e["item"]["call_id"]
        for e in events
        if e["type"] == "conversation.item.create" and e["item"]["type"] == "function_call_output"
    )


# -- the sideband dropped at random points ----------------------------------------------------


async def test_ten_drops_at_random_points_lose_no_turn_and_answer_every_call_once(
    start_server: Any, sim: SimControl, echo: EchoPlugin
) -> None:
    """Drops land between turns, while a transcription is still running (its result comes
    during the outage: the reconnect asks for the item again), and while a tool is running
    (its output waits for the reconnect)."""
    rng = random.Random(20261128)
    steps = [rng.choice(["user", "user", "assistant", "tool"]) for _ in range(30)]
    drop_points = set(rng.sample(range(len(steps)), 10))
    url = await start_with_echo(start_server, echo, **FAST_RECONNECTS)
    said: list[str] = []
    last = ""  # the last words spoken: the model's answer to a user's step
    calls: list[str] = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        session_id, call_id = await live_session(client, sim, enableTranscription=True)
        sockets = 1

        async def dropped_and_back() -> None:
            nonlocal sockets
            await sim.drive(call_id, "drop")
            sockets += 1

            await wait_until(lambda: sockets_opened(sim, call_id, sockets))
            await wait_for_sideband(client, session_id, "connected")

        for index, kind in enumerate(steps):
            drop = index in drop_points
            text = f"Step {index}."
            if kind == "user":
                last = f"Answer to step {index}."  # voice activity's response says it
                await sim.drive(call_id, "replies", text=last)
                await sim.drive(call_id, "user", text=text, transcriptionDelayMs=150)
                said.append(text)
                if drop:
                    await dropped_and_back()  # the transcription completes meanwhile
            elif kind == "assistant":
                await sim.drive(call_id, "assistant", text=text)
                said.append(text)
                last = text
                if drop:
                    await dropped_and_back()
            else:
                results: list[dict[str, Any]] = []
                arguments = {"text": text, "seconds": 0.3 if drop else 0}
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(call_tool, sim, call_id, arguments, results)
                    if drop:
                        await trio.sleep(0.1)  # the tool is running
                        await dropped_and_back()
                (result,) = results
                assert json.loads(result["output"]) == {"ok": True, "echo": text}
                calls.append(result["callId"])

        async def settled() -> dict[str, Any] | None:
            view = await session_state(client, session_id)
            done = all(e["status"] == "complete" for e in view["transcript"])
            heard = [e["text"] for e in view["transcript"]]
            return view if done and heard[-1:] == [last] else None

        view = await wait_until(settled)
        call = await sim.call(call_id)
    conversation = [
        (item["role"], part.get("transcript") or part.get("text"))
        for item in call["items"]
        if item["type"] == "message"
        for part in item["content"]
    ]
    heard = [(e["role"], e["text"]) for e in view["transcript"]]
    assert heard == conversation  # every turn, in the call's own order
    assert [text for _, text in heard if text.startswith("Step ")] == said
    events = [e["event"] for e in call["clientEvents"]]
    assert outputs_by_call(events) == Counter(calls)  # each call answered exactly once
    assert len(calls) == steps.count("tool")
    assert view["sideband"]["state"] == "connected"


async def call_tool(
    sim: SimControl, call_id: str, arguments: dict[str, Any], results: list[dict[str, Any]]
) -> None:
    """The model calls `echo`; its result (output and all) lands in *results*."""
    results.append(await sim.drive(call_id, "tool-call", name="echo", arguments=arguments))


async def test_a_reconnect_asks_for_the_turns_the_drop_left_unfinished(
    start_server: Any, sim: SimControl
) -> None:
    url = await start_server(**FAST_RECONNECTS)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        session_id, call_id = await live_session(client, sim, enableTranscription=True)
        item = (
            await sim.drive(call_id, "user", text="Said in the dark.", transcriptionDelayMs=300)
        )["itemId"]
        await sim.drive(call_id, "drop")
        await wait_until(lambda: sockets_opened(sim, call_id, 2))

        async def transcribed() -> list[dict[str, Any]] | None:
            entries = (await session_state(client, session_id))["transcript"]
            return entries if entries and entries[0]["status"] == "complete" else None

        entries = await wait_until(transcribed)
        retrieves = await sim.client_events(call_id, "conversation.item.retrieve")
    assert entries[0] == {
        "itemId": item,
        "role": "user",
        "text": "Said in the dark.",
        "status": "complete",
    }
    # voice activity's answer, heard before the drop
    assert [(e["role"], e["text"]) for e in entries[1:]] == [("assistant", DEFAULT_REPLY)]
    assert [e["item_id"] for e in retrieves] == [item]


# -- a reconnect storm is bounded ------------------------------------------------------------


async def test_reconnect_attempts_count_per_outage(start_server: Any, sim: SimControl) -> None:
    """Three drops with one attempt allowed: each outage starts the count afresh."""
    url = await start_server(sideband_reconnect_attempts=1, **FAST_RECONNECTS)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        session_id, call_id = await live_session(client, sim)
        for sockets in (2, 3, 4):
            await sim.drive(call_id, "drop")
            await wait_until(lambda n=sockets: sockets_opened(sim, call_id, n))
            await wait_for_sideband(client, session_id, "connected")


async def test_a_sideband_gone_for_good_fails_with_the_reason(
    start_server: Any, sim: SimControl
) -> None:
    url = await start_server(sideband_reconnect_attempts=2, **FAST_RECONNECTS)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        session_id, call_id = await live_session(client, sim)
        await sim.arm_fault("/v1/realtime", status=500, times=3)
        await sim.drive(call_id, "drop")

        view = await wait_for_sideband(client, session_id, "failed")
        handshakes = await sim.requests("/v1/realtime")
    assert view["sideband"]["lastError"].startswith("gave up after 2 reconnect attempts")
    assert len(handshakes) == 1 + 2  # the first connection, then the attempts of this outage


# -- bounded per-session work -----------------------------------------------------------------


async def test_beyond_the_pending_tool_call_limit_a_call_is_answered_busy(
    start_server: Any, sim: SimControl, echo: EchoPlugin
) -> None:
    url = await start_with_echo(start_server, echo, session_max_pending_tool_calls=2)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        _, call_id = await live_session(client, sim)
        async with trio.open_nursery() as nursery:
            for _ in range(2):
                nursery.start_soon(
                    lambda: sim.drive(call_id, "tool-call", name="wait_for_release", wait=False)
                )

            async def two_running() -> bool:
                return echo.waiting == 2

            await wait_until(two_running)
            busy = await sim.drive(call_id, "tool-call", name="echo", arguments={"text": "hi"})
            echo.release.set()

        async def three_answered() -> Counter[str] | None:
            answered = outputs_by_call(await sim.client_events(call_id))
            return answered if len(answered) == 3 else None

        answered = await wait_until(three_answered)
        seen = await scrape(client)
    assert json.loads(busy["output"])["reason"] == "busy"
    assert sorted(answered.values()) == [1, 1, 1]
    assert seen['realtime_trio_tool_calls_total{outcome="busy",tool="echo"}'] == 1
    assert seen['realtime_trio_tool_calls_total{outcome="ok",tool="wait_for_release"}'] == 2


async def test_a_tool_that_never_returns_is_cut_off_and_the_session_lives_on(
    start_server: Any, sim: SimControl, echo: EchoPlugin
) -> None:
    url = await start_with_echo(start_server, echo, tool_timeout_seconds=0.2)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        session_id, call_id = await live_session(client, sim)

        stuck = await sim.drive(call_id, "tool-call", name="wait_for_release")
        after = await sim.drive(call_id, "tool-call", name="echo", arguments={"text": "still here"})

        view = await session_state(client, session_id)
    assert json.loads(stuck["output"]) == {
        "ok": False,
        "reason": "timeout",
        "message": "The tool 'wait_for_release' did not answer within 0.2 seconds.",
    }
    assert json.loads(after["output"]) == {"ok": True, "echo": "still here"}
    assert view["sideband"] == {"state": "connected"}


async def test_a_long_call_keeps_the_latest_turns_and_counts_the_dropped(
    start_server: Any, sim: SimControl
) -> None:
    url = await start_server(transcript_max_entries=5)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        session_id, call_id = await live_session(client, sim, enableTranscription=True)
        said = []
        for n in range(4):  # each user turn answered by voice activity's response: 8 turns
            said += [f"Sentence {n}.", f"Answer {n}."]
            await sim.drive(call_id, "replies", text=said[-1])
            await sim.drive(call_id, "user", text=said[-2])

        async def all_heard() -> dict[str, Any] | None:
            view = await session_state(client, session_id)
            texts = [e["text"] for e in view["transcript"]]
            complete = all(e["status"] == "complete" for e in view["transcript"])
            return view if texts and texts[-1] == said[-1] and complete else None

        view = await wait_until(all_heard)
    # Over the cap of 5, a tenth of it (none, rounded down) beyond the one too many goes.
    assert [e["text"] for e in view["transcript"]] == said[3:]
    assert view["transcriptDropped"] == 3


# -- idleness -------------------------------------------------------------------------------------


async def test_an_idle_session_is_ended_and_its_sideband_closed_normally(
    start_server: Any, sim: SimControl
) -> None:
    url = await start_server(session_idle_ttl_seconds=0.5)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        session_id, call_id = await live_session(client, sim)

        async def closed() -> dict[str, Any] | None:  # asking the server would keep it alive
            call = await sim.call(call_id)
            return None if open_sockets(call) else call

        call = await wait_until(closed)
        after = await client.get(f"/session/{session_id}")
    assert [(s["open"], s["closeCode"]) for s in call["sockets"]] == [(False, 1000)]
    assert after.status_code == 404


async def test_sideband_events_and_api_use_keep_a_session_alive(
    start_server: Any, sim: SimControl
) -> None:
    url = await start_server(session_idle_ttl_seconds=2)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        talking_id, talking_call = await live_session(client, sim)
        polled = (await new_session(client))["sessionId"]
        forgotten = (await new_session(client))["sessionId"]
        for n in range(20):  # 4 s: twice the TTL, with activity every 0.2 s
            await sim.drive(talking_call, "assistant", text=f"Still talking {n}.")
            assert (await client.get(f"/session/{polled}")).status_code == 200
            await trio.sleep(0.2)

        statuses = [
            (await client.get(f"/session/{sid}")).status_code
            for sid in (talking_id, polled, forgotten)
        ]
    assert statuses == [200, 200, 404]


# -- churn ------------------------------------------------------------------------------------


async def test_two_thousand_sessions_come_and_go_and_leave_no_task_behind(
    start_server: Any, sim: SimControl
) -> None:
    url = await start_server()
    limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        # One session first, so whatever is started once (connection pools) is in the baseline.
        session_id, _ = await live_session(client, sim)
        assert (await client.delete(f"/session/{session_id}")).status_code == 204
        await trio.sleep(0.1)
        before = server_tasks()
        closed_calls: list[str] = []

        async def churn(count: int) -> None:
            for _ in range(count):
                session_id, call_id = await live_session(client, sim)
                assert (await client.delete(f"/session/{session_id}")).status_code == 204
                closed_calls.append(call_id)

        async with trio.open_nursery() as nursery:
            for _ in range(25):
                nursery.start_soon(churn, CHURN // 25)

        async def back_to_baseline() -> list[str] | None:
            now = server_tasks()
            return now if len(now) <= len(before) else None

        after = await wait_until(back_to_baseline, seconds=20)
        calls = (await sim.http.get(f"{sim.simulator.url}/_sim/calls")).json()["calls"]
    assert len(closed_calls) == CHURN
    assert after == before
    churned = set(closed_calls)
    assert {
        (socket["open"], socket["closeCode"])
        for call in calls
        if call["callId"] in churned
        for socket in call["sockets"]
    } == {(False, 1000)}


def server_tasks() -> list[str]:
    """The server's own tasks (this run also holds the simulator's, which keeps its calls)."""
    return sorted(
        task.name
        for task in all_tasks()
        if task.name.startswith("realtime_trio.") and ".simulator." not in task.name
    )
