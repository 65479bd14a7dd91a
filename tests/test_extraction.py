"""Profile extraction end to end: the tool the model calls, `/extract-profile`, failures."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio

from realtime_trio.simulator import Fault, RunningSimulator
from sim_client import SimControl, live_session, session_state, wait_until

RESPONSES = "/v1/responses"
ADA = {"first_name": "Ada", "last_name": "Lovelace", "income": 4500.0}


async def transcribed(client: httpx.AsyncClient, session_id: str, n: int) -> bool:
    entries = (await session_state(client, session_id))["transcript"]
    return len(entries) >= n and all(e["status"] == "complete" for e in entries)


async def ada_introduces_herself(
    client: httpx.AsyncClient, sim: SimControl, call_id: str, session_id: str
) -> None:
    # voice activity answers each turn with the queued reply
    await sim.drive(call_id, "replies", text="Nice to meet you, Ada!")
    await sim.drive(call_id, "replies", text="Got it.")
    await sim.drive(call_id, "user", text="Hi, my name is Ada Lovelace.")
    await sim.drive(call_id, "user", text="I earn 4500 dollars a month.")
    await wait_until(lambda: transcribed(client, session_id, 4))


def extractions(simulator: RunningSimulator) -> list[Any]:
    return [r.body for r in simulator.state.requests_to(RESPONSES)]


async def test_the_model_calls_extract_profile_and_the_call_learns_the_profile(
    client: httpx.AsyncClient, sim: SimControl, simulator: RunningSimulator
) -> None:
    session_id, call_id = await live_session(client, sim, enableTranscription=True)
    await ada_introduces_herself(client, sim, call_id, session_id)
    before = len(await sim.client_events(call_id))

    result = await sim.drive(call_id, "tool-call", name="extract_profile", arguments={})

    assert json.loads(result["output"]) == {"ok": True, "profile": ADA}
    assert result["responseCreated"] is True
    after = (await sim.client_events(call_id))[before:]
    assert [e["type"] for e in after] == [
        "conversation.item.create",
        "session.update",
        "response.create",
    ]
    assert after[0]["item"] == {
        "type": "function_call_output",
        "call_id": result["callId"],
        "output": json.dumps({"ok": True, "profile": ADA}),
    }
    instructions = after[1]["session"]["instructions"]
    assert "first_name: Ada" in instructions
    assert "last_name: Lovelace" in instructions
    view = await session_state(client, session_id)
    assert view["profile"] == ADA
    assert view["instructions"] == instructions
    (body,) = extractions(simulator)
    assert body["text"]["format"]["strict"] is True
    assert body["input"][1]["content"] == (
        "Transcript:\nUSER: Hi, my name is Ada Lovelace.\nASSISTANT: Nice to meet you, Ada!\n"
        "USER: I earn 4500 dollars a month.\nASSISTANT: Got it."
    )


async def test_a_fact_shared_in_conversation_makes_the_model_call_the_tool(
    client: httpx.AsyncClient, sim: SimControl
) -> None:
    session_id, call_id = await live_session(client, sim, enableTranscription=True)

    await sim.drive(call_id, "user", text="My name is Grace Hopper.", respond=True)

    async def learned() -> dict[str, Any] | None:
        view = await session_state(client, session_id)
        return view if view["profile"]["first_name"] else None

    view = await wait_until(learned)
    assert view["profile"] == {"first_name": "Grace", "last_name": "Hopper", "income": None}


async def test_calls_within_the_cooldown_share_one_extraction(
    start_server: Any, sim: SimControl, simulator: RunningSimulator
) -> None:
    url = await start_server(extraction_cooldown_seconds=0.5)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        session_id, call_id = await live_session(client, sim, enableTranscription=True)
        await ada_introduces_herself(client, sim, call_id, session_id)

        first = await sim.drive(call_id, "tool-call", name="extract_profile")
        second = await sim.drive(call_id, "tool-call", name="extract_profile")
        assert len(extractions(simulator)) == 1
        await trio.sleep(0.6)  # past the cooldown
        third = await sim.drive(call_id, "tool-call", name="extract_profile")

    assert json.loads(first["output"]) == {"ok": True, "profile": ADA}
    assert json.loads(second["output"]) == {
        "ok": False,
        "reason": "cooldown",
        "retryAfterSeconds": 1,
        "profile": ADA,
    }
    assert json.loads(third["output"]) == {"ok": True, "profile": ADA}
    assert [r["responseCreated"] for r in (first, second, third)] == [True, True, True]
    assert len(extractions(simulator)) == 2


async def test_extract_profile_endpoint_pushes_instructions_to_the_live_call(
    client: httpx.AsyncClient, sim: SimControl
) -> None:
    session_id, call_id = await live_session(client, sim, enableTranscription=True)
    await ada_introduces_herself(client, sim, call_id, session_id)

    response = await client.post(
        "/extract-profile", json={"sessionId": session_id, "transcript": "x"}
    )

    assert response.status_code == 200
    answer = response.json()
    assert answer["profile"] == ADA
    assert "first_name: Ada" in answer["instructions"]
    update = await wait_until(lambda: _last_update(sim, call_id, "first_name: Ada"))
    assert update["session"]["instructions"] == answer["instructions"]


async def _last_update(sim: SimControl, call_id: str, needle: str) -> dict[str, Any] | None:
    updates = await sim.client_events(call_id, "session.update")
    return updates[-1] if needle in updates[-1]["session"]["instructions"] else None


async def test_without_a_sideband_the_instructions_wait_for_the_next_call(
    client: httpx.AsyncClient, sim: SimControl
) -> None:
    session_id, call_id = await live_session(client, sim, enableTranscription=True)
    await ada_introduces_herself(client, sim, call_id, session_id)
    await sim.drive(call_id, "end")
    await wait_until(lambda: _sideband_is(client, session_id, "closed"))
    updates_before = len(await sim.client_events(call_id, "session.update"))

    response = await client.post("/extract-profile", json={"sessionId": session_id})

    assert response.status_code == 200
    assert len(await sim.client_events(call_id, "session.update")) == updates_before
    renewed = (await client.post("/session/renew", json={"sessionId": session_id})).json()
    assert "first_name: Ada" in renewed["instructions"]
    new_call = await sim.create_call(renewed["clientSecret"])
    await client.post("/session/call", json={"sessionId": session_id, "callId": new_call})
    (update,) = await sim.client_events(new_call, "session.update")
    assert "first_name: Ada" in update["session"]["instructions"]
    assert (
        "Conversation history:\nUSER: Hi, my name is Ada Lovelace."
        in update["session"]["instructions"]
    )


async def _sideband_is(client: httpx.AsyncClient, session_id: str, state: str) -> bool:
    return (await session_state(client, session_id))["sideband"]["state"] == state


async def test_nothing_said_yet_is_a_400_without_calling_upstream(
    client: httpx.AsyncClient, simulator: RunningSimulator
) -> None:
    session_id = (await client.post("/session", json={})).json()["sessionId"]

    response = await client.post("/extract-profile", json={"sessionId": session_id})
    missing = await client.post("/extract-profile", json={})
    unknown = await client.post("/extract-profile", json={"sessionId": "nope"})

    assert response.status_code == 400
    assert response.json() == {
        "error": "No transcript available for extraction",
        "code": "no_transcript",
    }
    assert (missing.status_code, missing.json()["error"]) == (400, "sessionId is required")
    assert (unknown.status_code, unknown.json()["error"]) == (404, "Unknown sessionId")
    assert extractions(simulator) == []


async def test_concurrent_requests_share_one_upstream_call(
    client: httpx.AsyncClient, sim: SimControl, simulator: RunningSimulator
) -> None:
    session_id, call_id = await live_session(client, sim, enableTranscription=True)
    await ada_introduces_herself(client, sim, call_id, session_id)
    simulator.state.faults.append(Fault(path=RESPONSES, delay_seconds=0.5))
    answers: list[httpx.Response] = []

    async def extract() -> None:
        answers.append(await client.post("/extract-profile", json={"sessionId": session_id}))

    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(extract)

    assert [a.status_code for a in answers] == [200] * 4
    assert all(a.json()["profile"] == ADA for a in answers)
    assert len(extractions(simulator)) == 1


FAILURES = [
    ("refusal", 502, "extraction_failed", "Extraction refused"),
    ("incomplete", 502, "extraction_failed", "Extraction incomplete: max_output_tokens"),
    ("invalid_json", 502, "extraction_failed", "Extraction returned text that is not JSON"),
    ("failed", 502, "extraction_failed", "Extraction failed"),
    ("status_500", 502, "upstream_error", "Upstream error 500"),
    ("slow", 504, "upstream_timeout", "Upstream did not answer POST /responses"),
]


def arm(simulator: RunningSimulator, mode: str) -> None:
    if mode == "status_500":
        simulator.state.faults.append(Fault(path=RESPONSES, status=500))
    elif mode == "slow":
        simulator.state.faults.append(Fault(path=RESPONSES, delay_seconds=30))
    else:
        simulator.state.responses.arm(mode)


@pytest.fixture
async def impatient_ada(
    start_server: Any, sim: SimControl
) -> AsyncIterator[tuple[httpx.AsyncClient, str, str]]:
    """A live call where Ada has introduced herself, on a server with a short upstream deadline
    and no retries (they have their own tests)."""
    url = await start_server(upstream_timeout_seconds=0.5, upstream_retry_attempts=0)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        session_id, call_id = await live_session(client, sim, enableTranscription=True)
        await ada_introduces_herself(client, sim, call_id, session_id)
        yield client, session_id, call_id


@pytest.mark.parametrize(("mode", "status", "code", "message"), FAILURES)
async def test_a_failed_extraction_keeps_the_old_profile(
    impatient_ada: tuple[httpx.AsyncClient, str, str],
    sim: SimControl,
    simulator: RunningSimulator,
    mode: str,
    status: int,
    code: str,
    message: str,
) -> None:
    client, session_id, call_id = impatient_ada
    extracted = await client.post("/extract-profile", json={"sessionId": session_id})
    assert extracted.status_code == 200
    await sim.drive(call_id, "user", text="Actually, my name is Grace Hopper.")
    await wait_until(lambda: transcribed(client, session_id, 6))  # and the model's reply
    arm(simulator, mode)

    response = await client.post("/extract-profile", json={"sessionId": session_id})

    assert response.status_code == status
    assert response.json()["code"] == code
    assert response.json()["error"].startswith(message)
    assert (await session_state(client, session_id))["profile"] == ADA


@pytest.mark.parametrize(("mode", "status", "code", "message"), FAILURES)
async def test_a_failed_extraction_still_answers_the_model(
    impatient_ada: tuple[httpx.AsyncClient, str, str],
    sim: SimControl,
    simulator: RunningSimulator,
    mode: str,
    status: int,
    code: str,
    message: str,
) -> None:
    client, session_id, call_id = impatient_ada
    arm(simulator, mode)

    result = await sim.drive(call_id, "tool-call", name="extract_profile")

    output = json.loads(result["output"])
    assert (output["ok"], output["reason"]) == (False, "error")
    assert output["message"].startswith(message)
    assert result["responseCreated"] is True
    view = await session_state(client, session_id)
    assert view["profile"] == {"first_name": None, "last_name": None, "income": None}
    assert view["sideband"]["state"] == "connected"


async def test_events_during_a_slow_extraction_all_reach_the_transcript(
    client: httpx.AsyncClient, sim: SimControl, simulator: RunningSimulator
) -> None:
    session_id, call_id = await live_session(client, sim, enableTranscription=True)
    await ada_introduces_herself(client, sim, call_id, session_id)
    simulator.state.faults.append(Fault(path=RESPONSES, delay_seconds=3.0))
    spoken = [f"Sentence number {n}." for n in range(5)]

    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            lambda: sim.drive(call_id, "tool-call", name="extract_profile", wait=False)
        )
        await wait_until(lambda: _extraction_started(simulator))
        for sentence in spoken:
            await sim.drive(call_id, "assistant", text=sentence)
        # The drives return once the simulator has queued the events; the server reads them
        # as they come, while its extraction is still waiting on upstream.
        await wait_until(lambda: _has(client, session_id, spoken[-1]))
        texts = [e["text"] for e in (await session_state(client, session_id))["transcript"]]
        assert await sim.client_events(call_id, "conversation.item.create") == []  # still running
        assert texts[-5:] == spoken

    profile = await wait_until(lambda: _profile_of(client, session_id))
    assert profile == ADA


async def _extraction_started(simulator: RunningSimulator) -> bool:
    return len(simulator.state.requests_to(RESPONSES)) == 1


async def _profile_of(client: httpx.AsyncClient, session_id: str) -> dict[str, Any] | None:
    profile = (await session_state(client, session_id))["profile"]
    return profile if profile["first_name"] else None


async def _has(client: httpx.AsyncClient, session_id: str, text: str) -> bool:
    entries = (await session_state(client, session_id))["transcript"]
    return any(e["text"] == text for e in entries)
