"""A replica's hold on its sessions' sidebands, kept alive together.

`LeaseKeeper.run` renews every lease the replica holds in one store call, three times a lease
period. A hold the store says is lost (another replica took the session over after this one
was paused past its lease, or it was released) is dropped and its `lost` event set at once: the
session's sideband work is cancelled by whoever waits on it, so a replica that resumes after a
pause stops acting on its own. When the store cannot be reached, holds are kept: during an
outage nobody can take a session over, and a lease that expired meanwhile is taken back at the
same epoch once the store answers again (`LeaseTable.renew`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from ._leases import Lease, LeaseTable

logger = logging.getLogger("realtime_trio.leases")

RENEWALS_PER_LEASE = 3


@dataclass(eq=False)
class Hold:
    """This replica's hold on one session's sideband; `lost` is set when it is lost."""

    lease: Lease
    lost: trio.Event = field(default_factory=trio.Event)


class LeaseKeeper:
    """Takes, renews and gives up this replica's leases.

    Args:
        table: the leases in the store.
        replica: this replica's name (`REPLICA_ID`).
        lease_seconds: how long a hold lasts without renewal (`SIDEBAND_LEASE_SECONDS`).
        on_store_error: told of each failed renewal (the exception), for logs and readiness.
    """

    def __init__(
        self,
        table: LeaseTable,
        replica: str,
        lease_seconds: float,
        *,
        on_store_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self._table = table
        self.replica = replica
        self.lease_seconds = lease_seconds
        self._on_store_error = on_store_error
        self._holds: dict[str, Hold] = {}

    def holds(self) -> list[Hold]:
        return list(self._holds.values())

    def hold_of(self, session_id: str) -> Hold | None:
        return self._holds.get(session_id)

    def adopt(self, lease: Lease) -> Hold:
        """Keep *lease*, which another replica handed to this one (`LeaseTable.transfer`)."""
        hold = self._holds[lease.session_id] = Hold(lease)
        return hold

    def drop(self, hold: Hold) -> None:
        """Stop renewing *hold* without releasing it (it was handed over, or lost)."""
        if self._holds.get(hold.lease.session_id) is hold:
            del self._holds[hold.lease.session_id]

    async def take(self, session_id: str) -> Hold | None:
        """Hold *session_id*'s sideband, if no replica does; None if one does."""
        lease = await self._table.acquire(session_id, self.replica, self.lease_seconds)
        if lease is None:
            return None
        hold = self._holds[session_id] = Hold(lease)
        return hold

    async def give_up(self, hold: Hold) -> None:
        """Release *hold* (the session ends, or moves): another replica may take it at once."""
        if self._holds.get(hold.lease.session_id) is hold:
            del self._holds[hold.lease.session_id]
        await self._table.release(hold.lease)

    async def give_up_all(self) -> None:
        """Release every hold (a replica that stops hands its calls over)."""
        holds, self._holds = list(self._holds.values()), {}
        for hold in holds:
            await self._table.release(hold.lease)

    async def renew_once(self) -> None:
        """Renew every hold in one call; drop (and tell) the ones the store says are lost."""
        holds = list(self._holds.values())
        if not holds:
            return
        try:
            kept = await self._table.renew([hold.lease for hold in holds], self.lease_seconds)
        except Exception as exc:  # the store away: keep holding, nobody can take over now
            if self._on_store_error is not None:
                self._on_store_error(exc)
            logger.warning("could not renew %d sideband leases: %s", len(holds), type(exc).__name__)
            return
        for hold, still in zip(holds, kept, strict=True):
            if still:
                continue
            logger.warning(
                "session %s: sideband lease (epoch %d) lost to another replica",
                hold.lease.session_id,
                hold.lease.epoch,
            )
            if self._holds.get(hold.lease.session_id) is hold:
                del self._holds[hold.lease.session_id]
            hold.lost.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Renew until cancelled, `RENEWALS_PER_LEASE` times a lease period."""
        task_status.started()
        while True:
            await trio.sleep(self.lease_seconds / RENEWALS_PER_LEASE)
            await self.renew_once()
