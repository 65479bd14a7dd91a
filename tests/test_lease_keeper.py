"""A replica's holds: kept alive together, lost at once when taken over, kept through a store
outage, and all handed over when the replica stops. Against both lease tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import trio

from realtime_trio._lease_keeper import LeaseKeeper
from realtime_trio._leases import Lease, MemoryLeaseTable

LEASE = 0.3


async def test_holds_outlive_their_lease_while_the_keeper_runs(open_leases: Any) -> None:
    async with open_leases() as table, trio.open_nursery() as nursery:
        keeper = LeaseKeeper(table, "replica-a", LEASE)
        await nursery.start(keeper.run)
        hold = await keeper.take("s1")
        assert hold is not None
        await trio.sleep(LEASE * 4)
        assert await table.holder("s1") == hold.lease
        assert not hold.lost.is_set()
        nursery.cancel_scope.cancel()


async def test_a_paused_replica_learns_at_its_next_renewal_that_it_lost_the_session(
    open_leases: Any,
) -> None:
    async with open_leases() as table:
        paused = LeaseKeeper(table, "replica-a", LEASE)
        successor = LeaseKeeper(table, "replica-b", LEASE)
        hold = await paused.take("s1")
        assert hold is not None
        assert await successor.take("s1") is None

        await trio.sleep(LEASE + 0.1)  # replica-a does not renew: a GC pause, SIGSTOP
        taken = await successor.take("s1")
        assert taken is not None
        assert taken.lease.epoch > hold.lease.epoch

        await paused.renew_once()  # it resumes
        assert hold.lost.is_set()
        assert paused.holds() == []
        assert await table.holder("s1") == taken.lease


async def test_a_stopping_replica_hands_every_session_over_at_once(open_leases: Any) -> None:
    async with open_leases() as table:
        stopping = LeaseKeeper(table, "replica-a", 60)
        for n in range(3):
            assert await stopping.take(f"s{n}") is not None
        await stopping.give_up_all()

        other = LeaseKeeper(table, "replica-b", 60)
        taken = [await other.take(f"s{n}") for n in range(3)]
        assert all(hold is not None for hold in taken)


class FlakyStore(MemoryLeaseTable):
    """Leases in memory whose renewals fail while `away` is set, as a store outage looks."""

    def __init__(self) -> None:
        super().__init__()
        self.away = False

    async def renew(self, leases: Sequence[Lease], ttl_seconds: float) -> list[bool]:
        if self.away:
            raise ConnectionError("store unreachable")
        return await super().renew(leases, ttl_seconds)


async def test_a_store_outage_loses_no_hold_and_the_holder_carries_on_after_it() -> None:
    store = FlakyStore()
    errors: list[Exception] = []
    keeper = LeaseKeeper(store, "replica-a", LEASE, on_store_error=errors.append)
    hold = await keeper.take("s1")
    assert hold is not None

    store.away = True
    await trio.sleep(LEASE + 0.1)
    await keeper.renew_once()
    assert not hold.lost.is_set()
    assert keeper.holds() == [hold]
    assert [type(error) for error in errors] == [ConnectionError]

    store.away = False  # back: the lease expired meanwhile, nobody took it
    await keeper.renew_once()
    assert not hold.lost.is_set()
    assert await store.holder("s1") == hold.lease
