"""Scale-out on a real Valkey: two or three `realtime-trio serve` processes, one simulator.

Any replica answers for any session; each call's sideband is held by one replica at a time
(the simulator never sees two sockets of one call open at once); a replica killed, paused or
stopped loses no session, no turn and no tool call.
"""

from __future__ import annotations

import itertools
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from realtime_trio.simulator import RunningSimulator
from replicas import LEASE_SECONDS, Replica, running_replicas
from sim_client import SimControl, wait_until
from valkey_server import valkey_process

DEFAULT_REPLY = "Sure, I can help with that."  # the simulated model's, when none is queued
TAKEOVER_BOUND = LEASE_SECONDS + 6.0  # the "lease plus a second or two", loosely


@pytest.fixture
async def replicas(
    tmp_path: Path, valkey_url: str, simulator: RunningSimulator
) -> AsyncIterator[list[Replica]]:
    async with running_replicas(
        tmp_path,
        count=2,
        store_url=valkey_url,
        prefix=f"test:{uuid.uuid4().hex}:",
        upstream=simulator.base_url,
    ) as started:
        yield started


async def view(replica: Replica, session_id: str) -> dict[str, Any]:
    response = await replica.http.get(f"/session/{session_id}")
    assert response.status_code == 200, response.text
    return response.json()


async def held_by(replica: Replica, session_id: str, holder: str) -> dict[str, Any] | None:
    """The session as *replica* sees it, once *holder* holds it with its sideband connected."""
    seen = await view(replica, session_id)
    sideband = seen["sideband"]
    return seen if sideband["replica"] == holder and sideband["state"] == "connected" else None


async def said(replica: Replica, session_id: str, texts: list[str]) -> list[dict[str, Any]] | None:
    """The transcript as *replica* sees it, once it reads *texts*, complete, in this order."""
    entries = (await view(replica, session_id))["transcript"]
    spoken = [e["text"] for e in entries if e["status"] == "complete"]
    return entries if spoken == texts else None


async def start_call(replica: Replica, sim: SimControl) -> tuple[str, str]:
    created = await replica.http.post("/session", json={"enableTranscription": True})
    assert created.status_code == 200, created.text
    session = created.json()
    call_id = await sim.create_call(session["clientSecret"])
    attached = await replica.http.post(
        "/session/call", json={"sessionId": session["sessionId"], "callId": call_id}
    )
    assert attached.status_code == 200, attached.text
    return session["sessionId"], call_id


async def turn(sim: SimControl, call_id: str, user: str, assistant: str) -> None:
    await sim.drive(call_id, "replies", text=assistant)
    await sim.drive(call_id, "user", text=user)


def function_outputs(
    events: list[dict[str, Any]], call_id: str | None = None
) -> list[dict[str, Any]]:
    """The `function_call_output` items among *events* (of *call_id* alone, if given)."""
    return [
        e
        for e in events
        if e["item"]["type"] == "function_call_output" and call_id in (None, e["item"]["call_id"])
    ]


async def call_with_a_first_turn(one: Replica, other: Replica, sim: SimControl) -> tuple[str, str]:
    """A live call held by *one*, with a first turn *other* has already read in the store."""
    session_id, call_id = await start_call(one, sim)
    await turn(sim, call_id, "My name is Grace.", "Hi Grace.")
    await wait_until(lambda: said(other, session_id, ["My name is Grace.", "Hi Grace."]))
    return session_id, call_id


def never_two_open(call: dict[str, Any]) -> None:
    """No moment when two of the call's sockets were open together."""
    spans = sorted((s["openedAt"], s["closedAt"] or float("inf")) for s in call["sockets"])
    for (_, closed), (opened, _) in itertools.pairwise(spans):
        assert closed <= opened, call["sockets"]


async def test_a_session_made_on_one_replica_is_used_and_ended_through_the_other(
    replicas: list[Replica], sim: SimControl
) -> None:
    one, other = replicas
    created = await one.http.post("/session", json={"enableTranscription": True})
    assert created.status_code == 200, created.text
    session_id, secret = created.json()["sessionId"], created.json()["clientSecret"]
    assert (await view(other, session_id))["sideband"] == {"state": "idle", "replica": "replica-1"}

    # The app reports its call to the other replica: the session moves there, call attached.
    call_id = await sim.create_call(secret)
    attached = await other.http.post(
        "/session/call", json={"sessionId": session_id, "callId": call_id}
    )
    assert attached.status_code == 200, attached.text
    assert attached.json() == {
        "sessionId": session_id,
        "callId": call_id,
        "sideband": {"state": "connected"},
    }
    await turn(sim, call_id, "Hi, I'm Ada Lovelace.", "Hello Ada!")
    await wait_until(lambda: said(one, session_id, ["Hi, I'm Ada Lovelace.", "Hello Ada!"]))
    assert (await view(one, session_id))["sideband"]["replica"] == "replica-2"

    renewed = await one.http.post("/session/renew", json={"sessionId": session_id})
    assert renewed.status_code == 200, renewed.text
    assert "USER: Hi, I'm Ada Lovelace." in renewed.json()["instructions"]
    assert renewed.json()["callId"] == call_id

    extracted = await other.http.post("/extract-profile", json={"sessionId": session_id})
    assert extracted.status_code == 200, extracted.text
    assert extracted.json()["profile"]["first_name"] == "Ada"
    assert (await view(one, session_id))["profile"]["first_name"] == "Ada"

    deleted = await one.http.delete(f"/session/{session_id}")
    assert deleted.status_code == 204
    for replica in replicas:
        gone = await replica.http.get(f"/session/{session_id}")
        assert gone.status_code == 404
        assert gone.json()["code"] == "unknown_session"
    call = await sim.call(call_id)
    never_two_open(call)
    assert call["ended"]  # the session's end hung its call up


async def test_a_killed_holder_s_calls_are_taken_over_with_the_transcript_whole(
    replicas: list[Replica], sim: SimControl
) -> None:
    one, other = replicas
    session_id, call_id = await call_with_a_first_turn(one, other, sim)

    one.signal(signal.SIGKILL)
    killed_at = trio.current_time()
    await wait_until(lambda: held_by(other, session_id, "replica-2"), seconds=TAKEOVER_BOUND + 5)
    assert trio.current_time() - killed_at < TAKEOVER_BOUND

    # The successor gave the call the session's instructions again, and hears what is said.
    updates = await sim.client_events(call_id, "session.update")
    call = await sim.call(call_id)
    assert len(updates) == 2, (call["sockets"], [e["event"]["type"] for e in call["clientEvents"]])
    assert updates[-1]["session"]["instructions"] == (await view(other, session_id))["instructions"]
    await turn(sim, call_id, "I live in London.", "Noted.")
    spoken = ["My name is Grace.", "Hi Grace.", "I live in London.", "Noted."]
    await wait_until(lambda: said(other, session_id, spoken))

    # The next tool call is answered once, by the successor.
    result = await sim.drive(
        call_id, "tool-call", name="extract_profile", arguments={}, timeoutSeconds=10
    )
    assert result["output"] is not None
    events = await sim.client_events(call_id, "conversation.item.create")
    assert [e["item"]["call_id"] for e in function_outputs(events)] == [result["callId"]]
    never_two_open(await sim.call(call_id))


async def test_a_holder_paused_past_its_lease_stops_acting_when_it_resumes(
    replicas: list[Replica], sim: SimControl
) -> None:
    one, other = replicas
    session_id, call_id = await call_with_a_first_turn(one, other, sim)

    one.signal(signal.SIGSTOP)  # a GC pause, a frozen VM: its socket stays open meanwhile
    await wait_until(lambda: held_by(other, session_id, "replica-2"), seconds=TAKEOVER_BOUND + 5)
    await turn(sim, call_id, "I live in London.", "Noted.")
    during = await sim.drive(
        call_id, "tool-call", name="extract_profile", arguments={}, timeoutSeconds=10
    )

    one.signal(signal.SIGCONT)
    # It finds its hold gone and lets the call go: its socket closes, without a hang-up.
    await wait_until(lambda: _sockets_open(sim, call_id, 1), seconds=10)
    assert "no longer held here" in one.log_text() or "lost to another replica" in one.log_text()
    events = await sim.client_events(call_id, "conversation.item.create")
    assert len(function_outputs(events, during["callId"])) == 1  # the paused one never answered
    # What the model said after the tool's output is in the transcript too.
    spoken = ["My name is Grace.", "Hi Grace.", "I live in London.", "Noted.", DEFAULT_REPLY]
    for replica in replicas:  # its late writes were refused: the successor's record stands
        await wait_until(lambda replica=replica: said(replica, session_id, spoken))
        assert (await view(replica, session_id))["sideband"]["replica"] == "replica-2"
    assert not (await sim.call(call_id))["ended"]

    after = await sim.drive(
        call_id, "tool-call", name="extract_profile", arguments={}, timeoutSeconds=10
    )
    events = await sim.client_events(call_id, "conversation.item.create")
    assert len(function_outputs(events, after["callId"])) == 1


async def _sockets_open(sim: SimControl, call_id: str, n: int) -> bool:
    call = await sim.call(call_id)
    return sum(s["open"] for s in call["sockets"]) == n


async def test_a_rolling_restart_of_every_replica_loses_no_session_and_no_turn(
    replicas: list[Replica], sim: SimControl
) -> None:
    one, other = replicas
    session_id, call_id = await start_call(one, sim)
    spoken: list[str] = []
    for n, (stopping, successor) in enumerate([(one, other), (other, one)]):
        user, assistant = f"Turn {n}, before.", f"Answer {n}, before."
        await turn(sim, call_id, user, assistant)
        spoken += [user, assistant]
        assert await stopping.stopped() == 0
        # Handed over at once: well within one lease, not after it ran out.
        await wait_until(
            lambda successor=successor: held_by(successor, session_id, successor.name),
            seconds=LEASE_SECONDS + 2,
        )
        await stopping.start()  # the new version comes up
        user, assistant = f"Turn {n}, after.", f"Answer {n}, after."
        await turn(sim, call_id, user, assistant)
        spoken += [user, assistant]
        expected = list(spoken)
        await wait_until(lambda s=successor, e=expected: said(s, session_id, e))
    for replica in replicas:
        assert (await view(replica, session_id))["sideband"]["replica"] == "replica-1"
    call = await sim.call(call_id)
    never_two_open(call)
    assert not call["ended"]


async def test_the_sessions_of_a_killed_replica_are_shared_out_among_the_survivors(
    tmp_path: Path, valkey_url: str, simulator: RunningSimulator, sim: SimControl
) -> None:
    async with running_replicas(
        tmp_path,
        count=3,
        store_url=valkey_url,
        prefix=f"test:{uuid.uuid4().hex}:",
        upstream=simulator.base_url,
    ) as (dying, *survivors):
        calls = [await start_call(dying, sim) for _ in range(12)]
        dying.signal(signal.SIGKILL)

        async def holders() -> list[str] | None:
            seen = [await view(survivors[0], session_id) for session_id, _ in calls]
            sidebands = [s["sideband"] for s in seen]
            if all(s["state"] == "connected" and s["replica"] != dying.name for s in sidebands):
                return [s["replica"] for s in sidebands]
            return None

        taken = await wait_until(holders, seconds=TAKEOVER_BOUND + 10)
        assert set(taken) == {"replica-2", "replica-3"}
        for _, call_id in calls:
            never_two_open(await sim.call(call_id))


async def test_a_store_outage_ends_no_call_and_what_was_said_meanwhile_is_kept(
    tmp_path: Path, simulator: RunningSimulator, sim: SimControl
) -> None:
    with valkey_process(appendonly=True) as store:
        async with running_replicas(
            tmp_path,
            count=2,
            store_url=store.url,
            prefix="outage:",
            upstream=simulator.base_url,
        ) as (one, other):
            session_id, call_id = await call_with_a_first_turn(one, other, sim)

            store.kill()
            await turn(sim, call_id, "I live in London.", "Noted.")  # the call goes on
            started = trio.current_time()
            refused = await other.http.get(f"/session/{session_id}")
            assert refused.status_code == 503
            assert refused.json()["code"] == "store_unavailable"
            assert trio.current_time() - started < 10  # answered, not hung
            assert (await other.http.get("/readyz")).status_code == 503
            assert (await other.http.get("/healthz")).status_code == 200
            await trio.sleep(LEASE_SECONDS + 1)  # past every lease: nobody can take over now

            store.start()  # with its append-only file
            await wait_until(lambda: _ready(other), seconds=20)
            spoken = ["My name is Grace.", "Hi Grace.", "I live in London.", "Noted."]
            await wait_until(lambda: said(other, session_id, spoken), seconds=20)
            assert (await other.http.get("/readyz")).status_code == 200
            # Its holder takes its lease back (at its next renewal), nobody else.
            await wait_until(lambda: held_by(other, session_id, "replica-1"), seconds=10)
            assert (await view(other, session_id))["sideband"] == {
                "state": "connected",
                "replica": "replica-1",
            }
            call = await sim.call(call_id)
            assert len(call["sockets"]) == 1  # the same socket all along
            assert not call["ended"]


async def _ready(replica: Replica) -> bool:
    return (await replica.http.get("/readyz")).status_code == 200


async def test_rate_limits_are_shared_by_every_replica(
    tmp_path: Path, valkey_url: str, simulator: RunningSimulator
) -> None:
    async with running_replicas(
        tmp_path,
        count=2,
        store_url=valkey_url,
        prefix=f"test:{uuid.uuid4().hex}:",
        upstream=simulator.base_url,
        rate_limit_per_minute=2,
        rate_limit_burst=2,
    ) as (one, other):
        assert (await one.http.post("/token")).status_code == 200
        assert (await other.http.post("/token")).status_code == 200
        for replica in (one, other):  # the bucket both drew from is empty
            refused = await replica.http.post("/token")
            assert refused.status_code == 429
            assert refused.json()["code"] == "rate_limited"
            assert int(refused.headers["Retry-After"]) >= 1


async def test_replicas_racing_for_one_session_hand_it_over_one_at_a_time(
    replicas: list[Replica], sim: SimControl
) -> None:
    one = replicas[0]
    session_id, call_id = await start_call(one, sim)
    for _ in range(8):
        answers: dict[str, httpx.Response] = {}

        async def renew(replica: Replica, answers: dict[str, httpx.Response] = answers) -> None:
            answers[replica.name] = await replica.http.post(
                "/session/renew", json={"sessionId": session_id}
            )

        async with trio.open_nursery() as nursery:
            for replica in replicas:
                nursery.start_soon(renew, replica)
        assert {name: a.status_code for name, a in answers.items()} == {
            "replica-1": 200,
            "replica-2": 200,
        }
        holders = {(await view(r, session_id))["sideband"]["replica"] for r in replicas}
        assert len(holders) == 1
    call = await sim.call(call_id)
    never_two_open(call)
    assert not call["ended"]
    await turn(sim, call_id, "Still there?", "Yes.")
    await wait_until(lambda: said(one, session_id, ["Still there?", "Yes."]))


async def test_a_session_moving_to_a_new_call_through_another_replica_skips_the_old_one(
    replicas: list[Replica], sim: SimControl
) -> None:
    one, other = replicas
    session_id, old_call = await start_call(one, sim)
    renewed = await other.http.post("/session/renew", json={"sessionId": session_id})
    assert renewed.status_code == 200, renewed.text
    new_call = await sim.create_call(renewed.json()["clientSecret"])

    moved = await one.http.post("/session/call", json={"sessionId": session_id, "callId": new_call})

    assert moved.status_code == 200, moved.text
    assert moved.json()["sideband"] == {"state": "connected"}
    # The renew moved the session to replica-2 with its old call; the move to the new call
    # through replica-1 opened no socket on the old call there.
    assert len((await sim.call(old_call))["sockets"]) == 2
    assert [s["open"] for s in (await sim.call(new_call))["sockets"]] == [True]
    assert (await view(other, session_id))["callId"] == new_call
