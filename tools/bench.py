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

Goals are checked here and printed with the figures, never in timed tests.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
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
    connect,
    expect,
    free_port,
    latency_summary,
    machine,
    rss_bytes,
    running,
    server_argv,
    server_env,
    simulator_argv,
)
from realtime_trio._demo import SDP_OFFER
from realtime_trio._transport import open_sideband_socket

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
    n = bench.sizes.ingest_events
    async with connect(bench.server.url) as api, connect(bench.simulator.url) as sim:
        session_id, call_id, _ = await live_session(api, sim)
        blast = await expect(
            sim,
            "POST",
            f"/_sim/calls/{call_id}/blast",
            {"count": n, "marker": NOOP, "timeoutSeconds": 300},
        )
        marker = blast.get("marker") or {}
        answered_at = (marker.get("timings") or {}).get("outputReceivedAt")
        if answered_at is None:
            raise BenchError(f"the marker tool call was not answered: {marker}")
        view = await expect(api, "GET", f"/session/{session_id}")
        server_seconds = answered_at - blast["firstSentAt"]
        drain = await _drain_ceiling(bench, n)
        trio_websocket_rate = await _trio_websocket_ceiling(
            bench, min(n, bench.sizes.bare_client_events)
        )
        transport_rate = await _transport_ceiling(bench, n)
    server_rate = n / server_seconds
    return {
        "parameters": {
            "events": n,
            "bytes": blast["bytes"],
            "wireBytes": blast["wireBytes"],
            "bareTrioWebsocketEvents": min(n, bench.sizes.bare_client_events),
        },
        "serverEventsPerSecond": round(server_rate),
        "serverSeconds": round(server_seconds, 4),
        "markerAnswered": True,
        "transcriptEntries": len(view.get("transcript") or []),
        "simulatorSendEventsPerSecond": round(drain),
        "bareTrioWebsocketEventsPerSecond": round(trio_websocket_rate),
        "bareTransportEventsPerSecond": round(transport_rate),
        "serverOverBareTrioWebsocket": round(server_rate / trio_websocket_rate, 2),
    }


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


async def _live_sessions(bench: Bench, k: int) -> dict[str, Any]:
    pid = bench.server.pid
    await _open_and_delete(bench, 20)  # warm up: imports, pools, first-use caches
    rss_start = rss_bytes(pid)
    started, attaching = time.monotonic(), _cpu(bench)
    opened, attach_seconds = await _open_sessions(bench, k)
    attach_all, attach_cpu = time.monotonic() - started, attaching.result()
    rss_live = rss_bytes(pid)
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
    }


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


def _cpu(bench: Bench) -> CPUShare:
    return CPUShare(server=bench.server.pid, simulator=bench.simulator.pid)


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


# -- running and reporting ------------------------------------------------------------------------

SCENARIOS: dict[str, Scenario | None] = {
    "ingest": ingest,
    "turnaround": turnaround,
    "sessions": None,  # one fresh pair of processes per K: see `run`
    "minting": minting,
    "churn": churn,
}


@asynccontextmanager
async def processes(sizes: Sizes, server_settings: dict[str, str]) -> Any:
    """A fresh simulator and server (its upstream) for one scenario."""
    async with AsyncExitStack() as stack:
        sim_port = free_port()
        simulator = await stack.enter_async_context(
            running(
                "simulator",
                simulator_argv(sim_port),
                env={},
                ready_path="/_sim/calls",
                port=sim_port,
            )
        )
        port = free_port()
        server = await stack.enter_async_context(
            running(
                "server",
                server_argv(port),
                env=server_env(simulator, **server_settings),
                ready_path="/healthz",
                port=port,
            )
        )
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
        scenario = SCENARIOS[name]
        if scenario is None:
            report["scenarios"][name] = await _sessions(sizes, server_settings)
            continue
        async with processes(sizes, server_settings) as bench:
            report["scenarios"][name] = await scenario(bench)
    report["goals"] = check_goals(report["scenarios"], max(sizes.sessions))
    return report


async def _sessions(sizes: Sizes, server_settings: dict[str, str]) -> dict[str, Any]:
    """The live-sessions scenario, each K on a fresh server (so its RSS starts from nothing)."""
    figures: dict[str, Any] = {"parameters": {"k": list(sizes.sessions)}}
    for k in sizes.sessions:
        async with processes(sizes, server_settings) as bench:
            figures[f"k{k}"] = await _live_sessions(bench, k)
    return figures


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
