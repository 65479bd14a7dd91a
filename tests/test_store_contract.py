"""The store contract, held to both stores: the in-process one and a real Valkey server.

Leases: one holder per session at a time, each change of holder a new and higher epoch (the
fencing token); a holder that lost its lease (expired and taken, or released) is refused when
it renews or releases. And racing replicas: exactly one winner per round.

Records: read by any replica, created once per id, written only by the lease holder (or by
anyone while nobody holds it), never by a holder that lost its lease. Inboxes: a replica gets
its own messages, in order, and none past its deadline.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

import trio

from realtime_trio._leases import Lease, LeaseTable

TTL = 0.3  # seconds: short, so expiry is seen quickly
Opener = Callable[[], Any]


async def test_a_free_session_is_taken_at_epoch_one_and_then_refused_to_others(
    open_leases: Opener,
) -> None:
    async with open_leases() as leases:
        first = await leases.acquire("s1", "replica-a", TTL)
        assert first == Lease("s1", "replica-a", 1)
        assert await leases.acquire("s1", "replica-b", TTL) is None
        assert await leases.acquire("s1", "replica-a", TTL) is None  # held: renew, not acquire
        assert await leases.holder("s1") == first
        assert await leases.holder("s2") is None


async def test_renewal_keeps_a_lease_past_its_ttl(open_leases: Opener) -> None:
    async with open_leases() as leases:
        lease = await leases.acquire("s1", "replica-a", TTL)
        assert lease is not None
        for _ in range(4):
            await trio.sleep(TTL / 2)
            assert await leases.renew([lease], TTL) == [True]
        assert await leases.holder("s1") == lease


async def test_an_expired_lease_goes_to_the_next_replica_at_a_higher_epoch_and_fences_the_old(
    open_leases: Opener,
) -> None:
    async with open_leases() as leases:
        old = await leases.acquire("s1", "replica-a", TTL)
        assert old is not None
        await trio.sleep(TTL + 0.1)  # replica-a paused past its lease
        assert await leases.holder("s1") is None
        new = await leases.acquire("s1", "replica-b", TTL)
        assert new == Lease("s1", "replica-b", old.epoch + 1)

        # replica-a resumes: its renewal and release are refused, the successor's stand.
        assert await leases.renew([old], TTL) == [False]
        assert await leases.release(old) is False
        assert await leases.holder("s1") == new


async def test_a_lease_that_expired_untaken_is_taken_back_by_its_holder_at_the_same_epoch(
    open_leases: Opener,
) -> None:
    async with open_leases() as leases:
        lease = await leases.acquire("s1", "replica-a", TTL)
        assert lease is not None
        await trio.sleep(TTL + 0.1)  # the store was away, or the renewal late: nobody took it
        assert await leases.holder("s1") is None
        assert await leases.renew([lease], TTL) == [True]
        assert await leases.holder("s1") == lease
        assert await leases.acquire("s1", "replica-b", TTL) is None


async def test_a_released_lease_is_free_at_once_and_its_epoch_never_reused(
    open_leases: Opener,
) -> None:
    async with open_leases() as leases:
        first = await leases.acquire("s1", "replica-a", 60)
        assert first is not None
        assert await leases.release(first) is True
        assert await leases.release(first) is False
        assert await leases.renew([first], 60) == [False]
        second = await leases.acquire("s1", "replica-a", 60)  # the same replica, a new hold
        assert second is not None
        assert second.epoch > first.epoch
        assert await leases.renew([first, second], 60) == [False, True]


async def test_renewal_answers_for_each_lease_of_a_batch(open_leases: Opener) -> None:
    async with open_leases() as leases:
        held = [await leases.acquire(f"s{n}", "replica-a", 60) for n in range(5)]
        assert all(lease is not None for lease in held)
        lost = held[2]
        assert lost is not None
        assert await leases.release(lost)
        kept = await leases.renew([lease for lease in held if lease is not None], 60)
        assert kept == [True, True, False, True, True]
        assert await leases.renew([], 60) == []


async def test_racing_replicas_get_one_winner_a_round_and_epochs_only_rise(
    open_leases: Opener,
) -> None:
    rounds, replicas = 25, 3
    winners: list[Lease] = []
    async with AsyncExitStack() as stack:
        tables = [await stack.enter_async_context(open_leases()) for _ in range(replicas)]

        async def race(table: LeaseTable, name: str, won: list[Lease]) -> None:
            lease = await table.acquire("contested", name, 60)
            if lease is not None:
                won.append(lease)

        for _ in range(rounds):
            won: list[Lease] = []
            async with trio.open_nursery() as nursery:
                for n, table in enumerate(tables):
                    nursery.start_soon(race, table, f"replica-{n}", won)
            assert len(won) == 1, won
            winners.append(won[0])
            assert await tables[0].release(won[0])  # checked against the holder it names

    epochs = [lease.epoch for lease in winners]
    # Each round two changes of holder: taken (by one) and released.
    assert epochs == list(range(1, 2 * rounds, 2))


# -- records -------------------------------------------------------------------------------


async def test_any_replica_reads_a_record_and_a_new_id_is_created_once(open_tables: Opener) -> None:
    async with open_tables() as one, open_tables() as other:
        assert await one.records.create("s1", {"sessionId": "s1", "n": 1}, 60)
        assert not await other.records.create("s1", {"sessionId": "s1", "n": 2}, 60)
        assert await other.records.load("s1") == {"sessionId": "s1", "n": 1}
        assert await other.records.load("s2") is None


async def test_only_the_lease_holder_writes_a_held_session(open_tables: Opener) -> None:
    async with open_tables() as tables:
        records, leases = tables.records, tables.leases
        assert await records.create("s1", {"n": 0}, 60)
        assert await records.save("s1", {"n": 1}, 60, lease=None)  # nobody holds it yet

        held = await leases.acquire("s1", "replica-a", 60)
        assert held is not None
        assert await records.save("s1", {"n": 2}, 60, lease=held)
        assert not await records.save("s1", {"n": 3}, 60, lease=None)
        assert not await records.save("s1", {"n": 4}, 60, lease=Lease("s1", "replica-b", 1))
        assert await records.load("s1") == {"n": 2}


async def test_a_paused_holder_cannot_write_over_its_successor(open_tables: Opener) -> None:
    async with open_tables() as tables:
        records, leases = tables.records, tables.leases
        assert await records.create("s1", {"by": "nobody"}, 60)
        old = await leases.acquire("s1", "replica-a", TTL)
        assert old is not None
        await trio.sleep(TTL + 0.1)
        assert await records.save("s1", {"by": "a, late but untaken"}, 60, lease=old)

        await trio.sleep(TTL + 0.1)
        new = await leases.acquire("s1", "replica-b", 60)
        assert new is not None
        assert await records.save("s1", {"by": "b"}, 60, lease=new)
        assert not await records.save("s1", {"by": "a, resumed"}, 60, lease=old)
        assert await records.load("s1") == {"by": "b"}


async def test_a_removed_record_is_gone_and_not_written_again(open_tables: Opener) -> None:
    async with open_tables() as tables:
        assert await tables.records.create("s1", {"n": 1}, 60)
        assert await tables.records.remove("s1")
        assert not await tables.records.remove("s1")
        assert not await tables.records.save("s1", {"n": 2}, 60, lease=None)
        assert await tables.records.load("s1") is None


# -- inboxes -------------------------------------------------------------------------------


async def test_a_message_reaches_its_replica_alone_in_order(open_tables: Opener) -> None:
    async with open_tables() as sender, open_tables() as receiver:
        for n in range(3):
            await sender.inbox.send("replica-b", {"op": "push", "n": n}, 10)
        await sender.inbox.send("replica-c", {"op": "other"}, 10)

        assert await receiver.inbox.receive("replica-b") == [
            {"op": "push", "n": 0},
            {"op": "push", "n": 1},
            {"op": "push", "n": 2},
        ]
        assert await receiver.inbox.receive("replica-b") == []
        assert await receiver.inbox.receive("replica-c") == [{"op": "other"}]


async def test_a_message_past_its_deadline_is_dropped_unread(open_tables: Opener) -> None:
    async with open_tables() as tables:
        await tables.inbox.send("replica-b", {"op": "stale"}, 0.05)
        await tables.inbox.send("replica-b", {"op": "fresh"}, 10)
        await trio.sleep(0.1)
        assert await tables.inbox.receive("replica-b") == [{"op": "fresh"}]


async def test_a_lease_handed_over_moves_in_one_step_to_a_higher_epoch(open_leases: Opener) -> None:
    async with open_leases() as leases:
        old = await leases.acquire("s1", "replica-a", TTL)
        assert old is not None
        moved = await leases.transfer(old, "replica-b", TTL)
        assert moved == Lease("s1", "replica-b", old.epoch + 1)
        assert await leases.holder("s1") == moved
        assert await leases.orphans(10) == []  # never free in between: nobody else takes it
        # The old holder's hold is over: renewing, releasing or handing it over is refused.
        assert await leases.renew([old], TTL) == [False]
        assert await leases.transfer(old, "replica-c", TTL) is None
        assert await leases.release(old) is False


async def test_unheld_sessions_are_offered_for_takeover_until_forgotten(
    open_leases: Opener,
) -> None:
    async with open_leases() as leases:
        kept = await leases.acquire("kept", "replica-a", TTL)
        dead = await leases.acquire("dead", "replica-a", TTL)
        stopping = await leases.acquire("stopping", "replica-a", TTL)
        ended = await leases.acquire("ended", "replica-a", TTL)
        assert kept is not None
        assert dead is not None
        assert stopping is not None
        assert ended is not None
        assert await leases.orphans(10) == []

        assert await leases.release(stopping)  # a replica that stops: offered at once
        assert await leases.forget(ended)  # a session that ended: never offered
        assert await leases.orphans(10) == ["stopping"]

        await trio.sleep(TTL / 2)
        assert await leases.renew([kept], TTL) == [True]
        await trio.sleep(TTL / 2 + 0.1)  # "dead"'s holder stopped renewing
        assert sorted(await leases.orphans(10)) == ["dead", "stopping"]
        assert len(await leases.orphans(1)) == 1

        taken = await leases.acquire("dead", "replica-b", TTL)
        assert taken is not None
        assert await leases.orphans(10) == ["stopping"]
        assert await leases.forget(dead) is False  # not its holder any more


async def test_replicas_alive_are_counted_by_their_heartbeats(open_leases: Opener) -> None:
    async with open_leases() as leases:
        assert await leases.heartbeat("replica-a", TTL) == 1
        assert await leases.heartbeat("replica-b", TTL) == 2
        await trio.sleep(TTL + 0.1)
        assert await leases.heartbeat("replica-b", TTL) == 1  # replica-a went quiet


async def test_a_function_call_is_claimed_once_across_holders_and_never_by_a_fenced_one(
    open_tables: Opener,
) -> None:
    async with open_tables() as tables:
        records, leases = tables.records, tables.leases
        assert await records.create("s1", {"n": 0}, 60)
        first = await leases.acquire("s1", "replica-a", TTL)
        assert first is not None
        assert await records.claim_call("s1", "call_1", first, 60) is True
        assert await records.claim_call("s1", "call_1", first, 60) is False
        await records.call_answered("s1", "call_1", first, 60)
        assert await records.claim_call("s1", "call_2", first, 60) is True  # then it "dies"

        await trio.sleep(TTL + 0.1)  # replica-a paused past its lease
        second = await leases.acquire("s1", "replica-b", TTL)
        assert second is not None
        assert await records.claim_call("s1", "call_1", second, 60) is False  # answered before
        assert await records.claim_call("s1", "call_2", second, 60) is True  # never answered
        assert await records.claim_call("s1", "call_2", second, 60) is False
        # replica-a resumes with a call it saw: it must not answer it.
        assert await records.claim_call("s1", "call_3", first, 60) is None


async def test_a_batch_of_writes_is_fenced_record_by_record(open_tables: Opener) -> None:
    async with open_tables() as tables:
        records, leases = tables.records, tables.leases
        for session in ("s1", "s2"):
            assert await records.create(session, {"n": 0}, 60)
        held = await leases.acquire("s1", "replica-a", TTL)
        lost = await leases.acquire("s2", "replica-a", TTL)
        assert held is not None
        assert lost is not None
        moved = await leases.transfer(lost, "replica-b", TTL)
        assert moved is not None
        saved = await records.save_many([("s1", {"n": 1}, held), ("s2", {"n": 1}, lost)], 60)
        assert saved == [True, False]
        assert await records.load("s1") == {"n": 1}
        assert await records.load("s2") == {"n": 0}
