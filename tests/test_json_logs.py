"""`LOG_FORMAT=json`: a real `realtime-trio serve` process, its stderr read line by line.

Every line is one JSON object; an access line carries the request's `X-Request-Id` (the client's
when sane, else a new one) and numbers as numbers; a session's lines carry its `session_id`
(and the sideband's its `call_id`), including those of tasks started in a fresh context; no
secret reaches any line. With `--workers`, the supervisor's lines and its workers' are JSON too.
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import httpx
import trio

from realtime_trio.simulator import DEFAULT_API_KEY, RunningSimulator
from realtime_trio.testing import SimControl
from sim_client import wait_until
from test_cli import _read_until, served
from test_workers import EXIT_SECONDS, healthz, supervised

KEYS = ("app-key-7f6e5d4c3b2a1908", "other-key-1a2b3c4d5e6f7a8b")
CLIENT_REQUEST_ID = "app-7:abc.DEF_1-2"
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
NEW_REQUEST_ID = re.compile(r"[0-9a-f]{32}")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


async def test_every_line_is_json_with_the_ids_of_its_request_session_and_call(
    simulator: RunningSimulator, sim: SimControl, tmp_path: Path
) -> None:
    responses: list[httpx.Response] = []
    with trio.fail_after(60):
        async with served(
            simulator,
            tmp_path,
            LOG_FORMAT="JSON",  # case-insensitive, as LOG_LEVEL
            LOG_LEVEL="debug",
            SIDEBAND_DEBUG_EVENTS="true",
            SERVER_API_KEYS=",".join(KEYS),
        ) as server:
            auth = {"Authorization": f"Bearer {KEYS[0]}"}
            async with httpx.AsyncClient(base_url=server.url, headers=auth, timeout=30) as http:
                session = await http.post(
                    "/session", json={}, headers={"X-Request-Id": CLIENT_REQUEST_ID}
                )
                session_id, secret = session.json()["sessionId"], session.json()["clientSecret"]
                call_id = await sim.create_call(secret)
                attached = await http.post(
                    "/session/call", json={"sessionId": session_id, "callId": call_id}
                )
                await sim.drive(call_id, "user", text="Hello, I am Ada from Lisbon.")

                async def transcribed() -> bool:
                    view = await http.get(f"/session/{session_id}")
                    return len(view.json()["transcript"]) >= 2

                await wait_until(transcribed)
                extracted = await http.post("/extract-profile", json={"sessionId": session_id})
                invalid = await http.post(
                    "/token", json={"voice": 1}, headers={"X-Request-Id": "has spaces in it"}
                )
                # A path holding a key: the access line's `path` and `message` are redacted.
                missing = await http.get(f"/session/{KEYS[1]}", headers={"X-Request-Id": "x" * 129})
                refused = await http.get("/session/x", headers={"Authorization": "Bearer wrong"})
                ended = await http.delete(f"/session/{session_id}")
                responses = [session, attached, extracted, invalid, missing, refused, ended]
            await _read_until(server.stderr, re.compile(r'"method":"DELETE".*\n'), server.seen)
            server.process.send_signal(signal.SIGTERM)
            assert await server.process.wait() == 0
            while chunk := await server.stderr.receive_some():
                server.seen.append(chunk.decode())

    assert [r.status_code for r in responses] == [200, 200, 200, 400, 404, 401, 204]
    text = "".join(server.seen)
    lines = [json.loads(line) for line in text.splitlines()]  # every line parses
    for line in lines:
        assert isinstance(line, dict), line
        assert ISO_UTC.fullmatch(line["ts"]), line
        assert all(isinstance(line[key], str) for key in ("level", "logger", "message")), line

    # Each answer's X-Request-Id is its access line's request_id; numbers are numbers.
    access = {
        line["request_id"]: line for line in lines if line["logger"] == "realtime_trio.access"
    }
    for line in access.values():
        assert isinstance(line["method"], str), line
        assert isinstance(line["path"], str), line
        assert type(line["status"]) is int, line
        assert _is_number(line["duration_ms"]), line
    for response in responses:
        line = access[response.headers["x-request-id"]]
        assert (line["method"], line["status"]) == (response.request.method, response.status_code)
    assert session.headers["x-request-id"] == CLIENT_REQUEST_ID
    for replaced in (invalid, missing):
        assert NEW_REQUEST_ID.fullmatch(replaced.headers["x-request-id"])
    assert access[missing.headers["x-request-id"]]["path"] == "/session/[redacted]"

    # Lines logged while serving a request carry its id; a session's own tasks carry its id,
    # the sideband's its call's too.
    minted = [line for line in lines if line["message"].startswith("minted client secret")]
    assert [line.get("request_id") for line in minted] == [CLIENT_REQUEST_ID]
    events = [line for line in lines if line["message"].startswith(f"sideband {session_id} event")]
    assert events
    assert all((e.get("session_id"), e.get("call_id")) == (session_id, call_id) for e in events)
    assert "request_id" not in events[0]  # the session's tasks outlive the request
    extraction = [line for line in lines if line["message"].startswith("upstream POST /responses")]
    assert [line.get("session_id") for line in extraction] == [session_id]

    for kept in [DEFAULT_API_KEY, *KEYS, secret]:
        assert kept not in text


async def test_with_workers_the_supervisor_and_every_worker_write_json(
    tmp_path: Path, valkey_url: str
) -> None:
    async with supervised(tmp_path, valkey_url, workers=2, LOG_FORMAT="json") as supervisor:
        with trio.fail_after(10):
            assert [await healthz(supervisor.url) for _ in range(4)] == [200] * 4
        supervisor.process.send_signal(signal.SIGTERM)
        with trio.fail_after(EXIT_SECONDS):
            assert await supervisor.process.wait() == 0

    lines = [json.loads(line) for line in supervisor.log_text().splitlines()]  # every line parses
    loggers = {line["logger"] for line in lines}
    assert {"realtime_trio.workers", "realtime_trio.access"} <= loggers
    assert sum(line["logger"] == "realtime_trio.access" for line in lines) == 4
