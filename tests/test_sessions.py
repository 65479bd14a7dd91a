"""Sessions and their sidebands, end to end: the app's HTTP calls, the simulator's live call."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import trio
from quart.globals import _cv_app, _cv_request

from conftest import make_settings
from realtime_trio._sessions import is_session_id, new_session_id
from realtime_trio.serve import serve
from realtime_trio.simulator import DEFAULT_API_KEY, Fault, RunningSimulator
from realtime_trio.simulator.turns import DEFAULT_REPLY
from sim_client import (
    FAST_RECONNECTS,
    SimControl,
    all_tasks,
    live_session,
    live_session_with_secret,
    new_session,
    open_sockets,
    session_state,
    sockets_opened,
    wait_for_sideband,
    wait_until,
    without_event_id,
)

CLIENT_SECRETS = "/v1/realtime/client_secrets"


# -- creating sessions --------------------------------------------------------------------


async def test_create_session_mints_a_secret_with_instructions_and_tools(
    client: httpx.AsyncClient, simulator: RunningSimulator
) -> None:
    answer = await new_session(
        client, voice="marin", enableTranscription=True, instructions="You are Acme's helper."
    )

    assert set(answer) == {"sessionId", "clientSecret", "expiresAt"}
    assert len(answer["sessionId"]) >= 22  # at least 128 random bits, URL-safe
    assert simulator.state.live_secret(answer["clientSecret"]) is not None
    (request,) = simulator.state.requests_to(CLIENT_SECRETS)
    session = request.body["session"]
    assert session["type"] == "realtime"
    assert session["model"] == "gpt-realtime"
    assert session["audio"] == {
        "output": {"voice": "marin"},
        "input": {"transcription": {"model": "gpt-4o-mini-transcribe"}},
    }
    assert session["instructions"].startswith("You are Acme's helper.")
    assert "What you already know about the user" in session["instructions"]
    assert [tool["name"] for tool in session["tools"]] == ["extract_profile"]
    assert session["tool_choice"] == "auto"


async def test_two_sessions_get_different_ids(client: httpx.AsyncClient) -> None:
    first, second = await new_session(client), await new_session(client)

    assert first["sessionId"] != second["sessionId"]


async def test_create_session_with_call_id_attaches_at_once(
    client: httpx.AsyncClient, sim: SimControl
) -> None:
    token = (await client.post("/token", json={})).json()
    call_id = await sim.create_call(token["clientSecret"])

    answer = await new_session(client, callId=call_id)

    assert answer["callId"] == call_id
    view = await wait_for_sideband(client, answer["sessionId"], "connected")
    assert view["callId"] == call_id
    updates = await sim.client_events(call_id, "session.update")
    assert len(updates) == 1


async def test_previous_session_is_ended_first(client: httpx.AsyncClient, sim: SimControl) -> None:
    old_id, call_id = await live_session(client, sim)

    answer = await new_session(client, previousSessionId=old_id)

    assert answer["sessionId"] != old_id
    assert (await client.get(f"/session/{old_id}")).status_code == 404
    call = await sim.call(call_id)
    assert open_sockets(call) == []
    assert [s["closeCode"] for s in call["sockets"]] == [1000]


# -- attaching --------------------------------------------------------------------------


async def test_attach_sends_one_session_update_with_tools_and_instructions(
    client: httpx.AsyncClient, sim: SimControl
) -> None:
    session_id, call_id = await live_session(
        client, sim, instructions="Be kind.", enableTranscription=True
    )

    (update,) = await sim.client_events(call_id, "session.update")
    session = update["session"]
    assert session["type"] == "realtime"
    assert session["tool_choice"] == "auto"
    assert [tool["name"] for tool in session["tools"]] == ["extract_profile"]
    assert session["tools"][0]["type"] == "function"
    assert session["tools"][0]["parameters"]["type"] == "object"
    instructions = session["instructions"]
    assert instructions.startswith("Be kind.")
    assert "extract_profile" in instructions  # guidance on when to call it
    assert "What you already know about the user" in instructions  # never tool text alone
    assert session["audio"] == {"input": {"transcription": {"model": "gpt-4o-mini-transcribe"}}}
    view = await session_state(client, session_id)
    assert view["instructions"] == instructions


async def test_posting_the_same_call_again_opens_no_second_socket(
    client: httpx.AsyncClient, sim: SimControl
) -> None:
    session_id, call_id = await live_session(client, sim)

    again = await client.post("/session/call", json={"sessionId": session_id, "callId": call_id})

    assert again.status_code == 200
    assert again.json()["sideband"] == {"state": "connected"}
    call = await sim.call(call_id)
    assert len(call["sockets"]) == 1
    assert len(await sim.client_events(call_id, "session.update")) == 1


async def test_refresh_to_a_new_call_closes_the_old_socket(
    client: httpx.AsyncClient, sim: SimControl
) -> None:
    session_id, old_call = await live_session(client, sim)
    renewed = await client.post("/session/renew", json={"sessionId": session_id})
    new_call = await sim.create_call(renewed.json()["clientSecret"])

    moved = await client.post("/session/call", json={"sessionId": session_id, "callId": new_call})

    assert moved.json() == {
        "sessionId": session_id,
        "callId": new_call,
        "sideband": {"state": "connected"},
    }
    old = await sim.call(old_call)
    assert [(s["open"], s["closeCode"]) for s in old["sockets"]] == [(False, 1000)]
    assert len(open_sockets(await sim.call(new_call))) == 1
    assert (await session_state(client, session_id))["callId"] == new_call


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "sessionId and callId are required"),
        ({"sessionId": "x"}, "sessionId and callId are required"),
        ({"callId": "rtc_1"}, "sessionId and callId are required"),
    ],
)
async def test_attach_needs_both_ids(
    client: httpx.AsyncClient, body: dict[str, Any], message: str
) -> None:
    response = await client.post("/session/call", json=body)

    assert response.status_code == 400
    assert response.json()["error"] == message


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/session/call", {"sessionId": "nope", "callId": "rtc_1"}),
        ("POST", "/session/renew", {"sessionId": "nope"}),
        ("GET", "/session/nope", None),
        ("DELETE", "/session/nope", None),
    ],
)
async def test_unknown_session_ids_are_404(
    client: httpx.AsyncClient, method: str, path: str, body: Any
) -> None:
    response = await client.request(method, path, json=body)

    assert response.status_code == 404
    assert response.json() == {"error": "Unknown sessionId", "code": "unknown_session"}


# -- the transcript ---------------------------------------------------------------------


async def test_transcript_follows_conversation_order_when_transcriptions_land_late(
    client: httpx.AsyncClient, sim: SimControl
) -> None:
    session_id, call_id = await live_session(client, sim, enableTranscription=True)

    # voice activity answers each turn with the queued reply, before its transcription lands
    await sim.drive(call_id, "replies", text="Hello Ada! How can I help?")
    await sim.drive(call_id, "replies", text="I can remember things about you.")
    first = await sim.drive(call_id, "user", text="Hi, I'm Ada Lovelace.", transcriptionDelayMs=300)
    second = await sim.drive(call_id, "user", text="What can you do?", transcriptionDelayMs=200)

    async def settled() -> list[dict[str, Any]] | None:
        entries = (await session_state(client, session_id))["transcript"]
        return (
            entries
            if all(e["status"] == "complete" for e in entries) and len(entries) == 4
            else None
        )

    entries = await wait_until(settled)
    assert [(e["role"], e["text"]) for e in entries] == [
        ("user", "Hi, I'm Ada Lovelace."),
        ("assistant", "Hello Ada! How can I help?"),
        ("user", "What can you do?"),
        ("assistant", "I can remember things about you."),
    ]
    assert entries[0]["itemId"] == first["itemId"]
    assert entries[2]["itemId"] == second["itemId"]


async def test_a_failed_transcription_is_a_marked_empty_turn(
    client: httpx.AsyncClient, sim: SimControl
) -> None:
    session_id, call_id = await live_session(client, sim, enableTranscription=True)

    await sim.drive(call_id, "replies", text="Sorry, could you repeat?")
    await sim.drive(call_id, "user", text="(mumble)", transcriptionFails=True)

    async def both() -> list[dict[str, Any]] | None:
        entries = (await session_state(client, session_id))["transcript"]
        settled = [e["status"] for e in entries] == ["failed", "complete"]
        return entries if settled else None

    entries = await wait_until(both)
    assert [(e["role"], e["text"], e["status"]) for e in entries] == [
        ("user", "", "failed"),
        ("assistant", "Sorry, could you repeat?", "complete"),
    ]


async def test_malformed_frames_and_unknown_events_are_skipped(
    client: httpx.AsyncClient, sim: SimControl
) -> None:
    session_id, call_id = await live_session(client, sim)

    await sim.drive(call_id, "send", raw="this is not json")
    await sim.drive(call_id, "send", raw='["an", "array"]')
    await sim.drive(call_id, "send", event={"type": "response.something_new", "event_id": "e1"})
    await sim.drive(call_id, "assistant", text="Still here.")

    async def spoke() -> dict[str, Any] | None:
        view = await session_state(client, session_id)
        entries = view["transcript"]
        return view if entries and entries[-1]["status"] == "complete" else None

    view = await wait_until(spoke)
    assert [e["text"] for e in view["transcript"]] == ["Still here."]
    assert view["sideband"] == {"state": "connected"}


async def test_an_upstream_error_event_is_kept_as_last_error(
    client: httpx.AsyncClient, sim: SimControl
) -> None:
    session_id, call_id = await live_session(client, sim)

    error = {
        "type": "error",
        "event_id": "event_1",
        "error": {
            "type": "invalid_request_error",
            "code": "session_expired",
            "message": "Too long.",
        },
    }
    await sim.drive(call_id, "send", event=error)

    async def noted() -> dict[str, Any] | None:
        view = await session_state(client, session_id)
        return view if "lastError" in view["sideband"] else None

    view = await wait_until(noted)
    assert view["sideband"] == {"state": "connected", "lastError": "session_expired: Too long."}


# -- tool calls -------------------------------------------------------------------------


async def test_a_tool_call_is_answered_once_then_a_response_is_requested(
    client: httpx.AsyncClient, sim: SimControl
) -> None:
    _, call_id = await live_session(client, sim)

    result = await sim.drive(call_id, "tool-call", name="lookup_order", arguments={"order": "1"})

    assert result["responseCreated"] is True
    output = json.loads(result["output"])
    assert output["ok"] is False
    assert output["reason"] == "unknown_tool"
    assert output["message"].startswith("There is no tool named 'lookup_order'.")
    events = await sim.client_events(call_id)
    outputs = [
        e
        for e in events
        if e["type"] == "conversation.item.create" and e["item"]["call_id"] == result["callId"]
    ]
    assert len(outputs) == 1
    kinds = [e["type"] for e in events]
    assert kinds.index("response.create") > kinds.index("conversation.item.create")
    assert kinds.count("response.create") == 1


# -- renew ------------------------------------------------------------------------------


async def test_renew_keeps_the_transcript_and_hands_back_its_history(
    client: httpx.AsyncClient, sim: SimControl, simulator: RunningSimulator
) -> None:
    session_id, call_id, first_secret = await live_session_with_secret(
        client, sim, voice="cedar", enableTranscription=True
    )
    await sim.drive(call_id, "replies", text="Nice to meet you, Ada.")
    await sim.drive(call_id, "user", text="My name is Ada.")
    await wait_until(lambda: _transcript_length(client, session_id, 2))
    before = await session_state(client, session_id)

    response = await client.post(
        "/session/renew", json={"sessionId": session_id, "transcript": "ignored"}
    )

    assert response.status_code == 200
    renewed = response.json()
    assert set(renewed) == {"sessionId", "clientSecret", "expiresAt", "instructions", "callId"}
    assert renewed["sessionId"] == session_id
    assert renewed["callId"] == call_id
    assert renewed["clientSecret"] != first_secret
    assert simulator.state.live_secret(renewed["clientSecret"]) is not None
    assert renewed["instructions"].endswith(
        "Conversation history:\nUSER: My name is Ada.\nASSISTANT: Nice to meet you, Ada."
    )
    minted = simulator.state.requests_to(CLIENT_SECRETS)[-1].body["session"]
    assert minted["audio"]["output"] == {"voice": "cedar"}
    assert minted["audio"]["input"]["transcription"]["model"] == "gpt-4o-mini-transcribe"
    after = await session_state(client, session_id)
    assert after["transcript"] == before["transcript"]
    assert after["sideband"] == {"state": "connected"}  # the running sideband is untouched


async def _transcript_length(client: httpx.AsyncClient, session_id: str, n: int) -> bool:
    entries = (await session_state(client, session_id))["transcript"]
    return len(entries) == n and all(e["status"] == "complete" for e in entries)


async def test_a_second_renew_in_flight_gets_429(
    client: httpx.AsyncClient, simulator: RunningSimulator
) -> None:
    session_id = (await new_session(client))["sessionId"]
    simulator.state.faults.append(Fault(path=CLIENT_SECRETS, delay_seconds=1.0))
    statuses: list[int] = []
    bodies: list[dict[str, Any]] = []

    async def renew() -> None:
        response = await client.post("/session/renew", json={"sessionId": session_id})
        statuses.append(response.status_code)
        bodies.append(response.json())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(renew)
        await wait_until(lambda: _upstream_calls(simulator, 2))  # the slow renew is in flight
        nursery.start_soon(renew)

    assert sorted(statuses) == [200, 429]
    assert {"error": "Renew already in progress", "code": "renew_in_progress"} in bodies


async def _upstream_calls(simulator: RunningSimulator, n: int) -> bool:
    return len(simulator.state.requests_to(CLIENT_SECRETS)) >= n


async def test_renew_needs_a_session_id(client: httpx.AsyncClient) -> None:
    response = await client.post("/session/renew", json={"transcript": "x"})

    assert response.status_code == 400
    assert response.json()["error"] == "sessionId is required"


# -- ending -----------------------------------------------------------------------------


async def test_close_ends_a_known_session_and_reports_unknown_ones(
    client: httpx.AsyncClient, sim: SimControl
) -> None:
    session_id, call_id = await live_session(client, sim)

    closed = await client.post("/session/close", json={"sessionId": session_id})
    again = await client.post("/session/close", json={"sessionId": session_id})
    missing = await client.post("/session/close", json={})

    assert closed.json() == {"sessionId": session_id, "closed": True}
    assert again.status_code == 200
    assert again.json() == {"sessionId": session_id, "closed": False}
    assert missing.status_code == 400
    assert missing.json()["error"] == "sessionId is required"
    call = await sim.call(call_id)
    assert [(s["open"], s["closeCode"]) for s in call["sockets"]] == [(False, 1000)]
    assert (await client.get(f"/session/{session_id}")).status_code == 404


async def test_delete_closes_the_socket(client: httpx.AsyncClient, sim: SimControl) -> None:
    session_id, call_id = await live_session(client, sim)

    deleted = await client.delete(f"/session/{session_id}")
    again = await client.delete(f"/session/{session_id}")

    assert (deleted.status_code, deleted.content) == (204, b"")
    assert again.status_code == 404
    call = await sim.call(call_id)
    assert [(s["open"], s["closeCode"]) for s in call["sockets"]] == [(False, 1000)]


# -- when the call or the network misbehaves -----------------------------------------


async def test_an_abrupt_drop_reconnects_and_the_transcript_continues(
    start_server: Any, sim: SimControl
) -> None:
    url = await start_server(**FAST_RECONNECTS)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        session_id, call_id = await live_session(client, sim, enableTranscription=True)
        await sim.drive(call_id, "user", text="Before the drop.")
        await wait_until(lambda: _transcript_length(client, session_id, 2))  # and the reply

        await sim.drive(call_id, "drop")
        call = await wait_until(lambda: sockets_opened(sim, call_id, 2))
        await wait_for_sideband(client, session_id, "connected")
        await sim.drive(call_id, "user", text="After the drop.")
        await wait_until(lambda: _transcript_length(client, session_id, 4))

        view = await session_state(client, session_id)
    assert [e["text"] for e in view["transcript"]] == [
        "Before the drop.",
        DEFAULT_REPLY,  # voice activity's answer, nothing being queued
        "After the drop.",
        DEFAULT_REPLY,
    ]
    assert len(open_sockets(call)) == 1
    updates = await sim.client_events(call_id, "session.update")
    assert len(updates) == 2
    # Tools and instructions re-sent, not lost.
    assert without_event_id(updates[0]) == without_event_id(updates[1])


async def test_a_normal_close_from_upstream_ends_in_closed_without_retry(
    start_server: Any, sim: SimControl
) -> None:
    url = await start_server(**FAST_RECONNECTS)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        session_id, call_id = await live_session(client, sim)

        await sim.drive(call_id, "end")
        view = await wait_for_sideband(client, session_id, "closed")
        await trio.sleep(0.3)  # ample time for a (wrong) retry at this backoff

        call = await sim.call(call_id)
    assert view["sideband"] == {"state": "closed"}
    assert len(call["sockets"]) == 1


async def test_refused_authentication_ends_in_failed(
    client: httpx.AsyncClient, sim: SimControl, simulator: RunningSimulator
) -> None:
    session = await new_session(client)
    call_id = await sim.create_call(session["clientSecret"])
    simulator.state.api_keys.discard(DEFAULT_API_KEY)  # the key is revoked upstream

    attached = await client.post(
        "/session/call", json={"sessionId": session["sessionId"], "callId": call_id}
    )

    sideband = attached.json()["sideband"]
    assert sideband["state"] == "failed"
    assert sideband["lastError"].startswith("authentication failed (401)")
    assert DEFAULT_API_KEY not in attached.text


async def test_an_unknown_call_ends_in_failed(client: httpx.AsyncClient) -> None:
    session_id = (await new_session(client))["sessionId"]

    attached = await client.post(
        "/session/call", json={"sessionId": session_id, "callId": "rtc_nope"}
    )

    sideband = attached.json()["sideband"]
    assert sideband["state"] == "failed"
    assert "No session found for the provided call_id" in sideband["lastError"]


async def test_the_client_secret_can_authenticate_the_sideband(
    start_server: Any, sim: SimControl, simulator: RunningSimulator
) -> None:
    url = await start_server(sideband_auth="client_secret")
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        session = await new_session(client)
        call_id = await sim.create_call(session["clientSecret"])
        simulator.state.api_keys.discard(DEFAULT_API_KEY)  # only the secret can work now

        attached = await client.post(
            "/session/call", json={"sessionId": session["sessionId"], "callId": call_id}
        )

    assert attached.json()["sideband"] == {"state": "connected"}


# -- the server as a whole --------------------------------------------------------------


async def test_shutdown_closes_every_sideband(
    nursery: trio.Nursery, simulator: RunningSimulator, sim: SimControl
) -> None:
    stop = trio.Event()
    stopped = trio.Event()
    settings = make_settings(openai_api_key=DEFAULT_API_KEY, openai_base_url=simulator.base_url)

    async def run_server(task_status: trio.TaskStatus[list[str]]) -> None:
        await serve(settings, shutdown_trigger=stop.wait, task_status=task_status)
        stopped.set()

    url = (await nursery.start(run_server))[0]
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        calls = [(await live_session(client, sim))[1] for _ in range(3)]

    stop.set()
    with trio.fail_after(30):
        await stopped.wait()

    for call_id in calls:
        call = await sim.call(call_id)
        assert [(s["open"], s["closeCode"]) for s in call["sockets"]] == [(False, 1000)]


async def test_two_hundred_live_sessions_in_one_process(
    client: httpx.AsyncClient, sim: SimControl
) -> None:
    sessions: list[tuple[str, str]] = []
    # All 200 end up live at once; they are opened 20 at a time, as a busy app fleet would,
    # so that a shared CI machine does not turn the test into a timeout test.
    opening = trio.CapacityLimiter(20)

    async def one() -> None:
        async with opening:
            await open_one()

    async def open_one() -> None:
        session = await new_session(client)
        call_id = await sim.create_call(session["clientSecret"])
        attached = await client.post(
            "/session/call", json={"sessionId": session["sessionId"], "callId": call_id}
        )
        assert attached.json()["sideband"]["state"] in ("connecting", "connected")
        sessions.append((session["sessionId"], call_id))

    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            for _ in range(200):
                nursery.start_soon(one)
        for session_id, _ in sessions:
            await wait_for_sideband(client, session_id, "connected", seconds=60)

    assert len({session_id for session_id, _ in sessions}) == 200
    for _, call_id in sessions:
        assert len(open_sockets(await sim.call(call_id))) == 1
    session_id, call_id = sessions[57]
    await sim.drive(call_id, "assistant", text="Session fifty-seven speaking.")
    await wait_until(lambda: _transcript_length(client, session_id, 1))


async def test_a_live_session_keeps_no_request_alive(
    client: httpx.AsyncClient, sim: SimControl
) -> None:
    """Tasks started while serving a request (the session's, its sideband's, an extraction)
    do not carry that request's context, which would hold Quart's request for their lifetime."""
    session_id, call_id = await live_session(client, sim, enableTranscription=True)
    await sim.drive(call_id, "user", text="My name is Ada.")

    async def transcribed() -> bool:
        entries = (await session_state(client, session_id))["transcript"]
        return any(entry["text"] for entry in entries)

    await wait_until(transcribed)
    extracted = await client.post("/extract-profile", json={"sessionId": session_id})
    assert extracted.status_code == 200, extracted.text

    server_tasks = [
        task
        for task in all_tasks()
        if task.name.startswith("realtime_trio.") and ".simulator." not in task.name
    ]
    names = {
        task.name.rsplit(".", 2)[-2] + "." + task.name.rsplit(".", 1)[-1] for task in server_tasks
    }
    assert {"SessionManager._run_session", "Sideband.run"} <= names
    holding = [t.name for t in server_tasks if _cv_request in t.context or _cv_app in t.context]
    assert holding == []


def test_only_ids_of_the_form_the_server_makes_are_looked_up() -> None:
    assert all(is_session_id(new_session_id()) for _ in range(200))
    for malformed in ["", "nope", "a" * 31, "a" * 33, "a" * 10_000, "../" + "a" * 29, "é" * 32]:
        assert not is_session_id(malformed), malformed
    assert not is_session_id(None)


@pytest.mark.parametrize("session_id", ["a" * 10_000, "not.an.id", "a" * 32])
async def test_a_malformed_or_unknown_id_is_404_whatever_its_form(
    client: httpx.AsyncClient, session_id: str
) -> None:
    for response in (
        await client.get(f"/session/{session_id}"),
        await client.post("/session/renew", json={"sessionId": session_id}),
        await client.post("/extract-profile", json={"sessionId": session_id}),
    ):
        assert response.status_code == 404, response.text
        assert response.json() == {"error": "Unknown sessionId", "code": "unknown_session"}


async def test_beyond_max_sessions_a_new_session_is_503_until_one_ends(start_server: Any) -> None:
    url = await start_server(max_sessions=2)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        # A burst: the slots are held while secrets are minted, so it cannot overshoot.
        answers: list[httpx.Response] = []
        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(lambda: _post_session(client, answers))
        statuses = sorted(r.status_code for r in answers)
        refused = next(r for r in answers if r.status_code == 503)
        first = next(r for r in answers if r.status_code == 200).json()["sessionId"]
        assert (await client.delete(f"/session/{first}")).status_code == 204
        after_one_ended = await client.post("/session", json={})

    assert statuses == [200, 200, 503, 503, 503]
    assert refused.json() == {
        "error": "This server already holds its maximum of 2 sessions; end one or try again later",
        "code": "session_limit",
    }
    assert after_one_ended.status_code == 200


async def _post_session(client: httpx.AsyncClient, answers: list[httpx.Response]) -> None:
    answers.append(await client.post("/session", json={}))
