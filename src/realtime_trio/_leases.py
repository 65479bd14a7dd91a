"""Who holds each live call's sideband: leases with fencing tokens.

One replica holds a session's sideband at a time. It holds it through a lease in the store that
lasts `SIDEBAND_LEASE_SECONDS` unless renewed. Every change of holder is one atomic step in the
store that increases the session's epoch (its fencing token): a replica paused past its lease
(GC, SIGSTOP) that resumes finds its renewals and writes refused, because its epoch is no longer
the session's, and stops acting on its own.

`LeaseTable` is the interface; `MemoryLeaseTable` serves one process (and is the reference the
store contract tests hold the Valkey table to).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Lease:
    """A hold on *session_id*'s sideband by *replica*, at *epoch*."""

    session_id: str
    replica: str
    epoch: int


class LeaseTable(Protocol):
    async def acquire(self, session_id: str, replica: str, ttl_seconds: float) -> Lease | None:
        """Take the session's lease if nobody holds it: a new, higher epoch; None if held."""
        ...

    async def renew(self, leases: Sequence[Lease], ttl_seconds: float) -> list[bool]:
        """Extend each lease still held at its epoch; False for one lost (taken by another
        replica, or released). A lease that expired while nobody took it is taken back at the
        same epoch: after a store outage or a late renewal the holder carries on, since no
        successor can have acted."""
        ...

    async def release(self, lease: Lease) -> bool:
        """Give the lease up (a stopping replica), if still held at its epoch; the epoch moves
        on, so a late renewal cannot take it back."""
        ...

    async def holder(self, session_id: str) -> Lease | None:
        """The session's current lease, if one is held."""
        ...

    async def transfer(self, lease: Lease, replica: str, ttl_seconds: float) -> Lease | None:
        """Hand the lease to *replica* in one step (a higher epoch), if still held at its
        epoch: no other replica can take the session between the two holders."""
        ...

    async def forget(self, lease: Lease) -> bool:
        """The session ended: drop its lease (the epoch moves on) and stop offering it for
        takeover, if still held at its epoch."""
        ...

    async def orphans(self, limit: int) -> list[str]:
        """Up to *limit* sessions nobody holds (their holder died, stopped or was paused past
        its lease) that were not forgotten: the ones to take over."""
        ...

    async def heartbeat(self, replica: str, ttl_seconds: float) -> int:
        """Note *replica* alive for *ttl_seconds*; how many replicas are alive now (takeovers
        are shared out by it)."""
        ...


class MemoryLeaseTable:
    """`LeaseTable` in this process's memory, on an injectable monotonic clock."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._held: dict[str, tuple[Lease, float]] = {}  # session -> (lease, expires at)
        self._epochs: dict[str, int] = {}
        self._offered: set[str] = set()  # sessions not forgotten: taken over when unheld
        self._replicas: dict[str, float] = {}  # replica -> alive until

    async def acquire(self, session_id: str, replica: str, ttl_seconds: float) -> Lease | None:
        if self._current(session_id) is not None:
            return None
        epoch = self._epochs.get(session_id, 0) + 1
        self._epochs[session_id] = epoch
        lease = Lease(session_id, replica, epoch)
        self._held[session_id] = (lease, self._clock() + ttl_seconds)
        self._offered.add(session_id)
        return lease

    async def renew(self, leases: Sequence[Lease], ttl_seconds: float) -> list[bool]:
        kept = []
        for lease in leases:
            current = self._current(lease.session_id)
            held = current == lease or (
                current is None and self._epochs.get(lease.session_id) == lease.epoch
            )
            if held:
                self._held[lease.session_id] = (lease, self._clock() + ttl_seconds)
            kept.append(held)
        return kept

    async def release(self, lease: Lease) -> bool:
        if self._current(lease.session_id) != lease:
            return False
        del self._held[lease.session_id]
        self._epochs[lease.session_id] += 1  # a change too: no late renewal takes it back
        return True

    async def holder(self, session_id: str) -> Lease | None:
        return self._current(session_id)

    async def transfer(self, lease: Lease, replica: str, ttl_seconds: float) -> Lease | None:
        if self._current(lease.session_id) != lease:
            return None
        epoch = self._epochs[lease.session_id] = self._epochs[lease.session_id] + 1
        moved = Lease(lease.session_id, replica, epoch)
        self._held[lease.session_id] = (moved, self._clock() + ttl_seconds)
        return moved

    async def forget(self, lease: Lease) -> bool:
        if not await self.release(lease):
            return False
        self._offered.discard(lease.session_id)
        return True

    async def orphans(self, limit: int) -> list[str]:
        unheld = [s for s in self._offered if self._current(s) is None]
        return unheld[:limit]

    async def heartbeat(self, replica: str, ttl_seconds: float) -> int:
        now = self._clock()
        self._replicas[replica] = now + ttl_seconds
        self._replicas = {name: until for name, until in self._replicas.items() if until > now}
        return len(self._replicas)

    def epoch(self, session_id: str) -> int:
        """The session's epoch now (0: never held)."""
        return self._epochs.get(session_id, 0)

    def _current(self, session_id: str) -> Lease | None:
        held = self._held.get(session_id)
        if held is None:
            return None
        lease, expires_at = held
        if self._clock() >= expires_at:
            del self._held[session_id]
            return None
        return lease
