"""Session records in a store, written under the sideband's lease.

Any replica reads a session's record; the replica that holds the session's sideband lease
writes it, and only while it holds it: `save` with a `Lease` is refused once the lease moved on
(the fencing token), so a replica paused past its lease that resumes cannot write over its
successor. A session with no live sideband (no call attached yet, or between holders) is written
by whoever handles the request (`save` without a lease, refused while someone holds one).

`RecordTable` is the interface; `MemoryRecordTable` serves one process and is the reference the
store contract tests hold the Valkey table to. Records are JSON objects (`record_to_json`).
"""

from __future__ import annotations

from typing import Any, Protocol

from ._leases import Lease, MemoryLeaseTable


class RecordTable(Protocol):
    async def create(self, session_id: str, record: dict[str, Any], ttl_seconds: float) -> bool:
        """Store a new session's record; False if the id is taken."""
        ...

    async def load(self, session_id: str) -> dict[str, Any] | None: ...

    async def save(
        self, session_id: str, record: dict[str, Any], ttl_seconds: float, lease: Lease | None
    ) -> bool:
        """Replace the record (its expiry starts again), if *lease* is still the session's, or
        (no lease) if nobody holds one and the session still exists. False when refused."""
        ...

    async def save_many(
        self, records: list[tuple[str, dict[str, Any], Lease]], ttl_seconds: float
    ) -> list[bool]:
        """`save` each (session, record, lease) in one round trip: a replica's batched
        writes. False for each one refused."""
        ...

    async def claim_call(
        self, session_id: str, call_id: str, lease: Lease, ttl_seconds: float
    ) -> bool | None:
        """Note that the function call *call_id* is being answered, under *lease*: True the
        first time, False if it was claimed before (by this holder, or answered by an earlier
        one), None when the lease is no longer the session's (the caller must not answer it).
        A call an earlier holder claimed but never answered (it died meanwhile) is claimed
        again (True)."""
        ...

    async def call_answered(
        self, session_id: str, call_id: str, lease: Lease, ttl_seconds: float
    ) -> None:
        """Note *call_id*'s answer delivered: no later holder claims it again."""
        ...

    async def remove(self, session_id: str) -> bool: ...


class MemoryRecordTable:
    """`RecordTable` in this process's memory, fenced by *leases* (no expiry: the session
    manager's idle TTL ends sessions in one process)."""

    def __init__(self, leases: MemoryLeaseTable) -> None:
        self._leases = leases
        self._records: dict[str, dict[str, Any]] = {}
        self._calls: dict[str, dict[str, int | None]] = {}  # call -> epoch; None: answered

    async def create(self, session_id: str, record: dict[str, Any], ttl_seconds: float) -> bool:
        if session_id in self._records:
            return False
        self._records[session_id] = record
        return True

    async def load(self, session_id: str) -> dict[str, Any] | None:
        return self._records.get(session_id)

    async def save(
        self, session_id: str, record: dict[str, Any], ttl_seconds: float, lease: Lease | None
    ) -> bool:
        if session_id not in self._records:
            return False
        allowed = await self._fenced(session_id, lease)
        if allowed:
            self._records[session_id] = record
        return allowed

    async def save_many(
        self, records: list[tuple[str, dict[str, Any], Lease]], ttl_seconds: float
    ) -> list[bool]:
        return [await self.save(s, record, ttl_seconds, lease) for s, record, lease in records]

    async def claim_call(
        self, session_id: str, call_id: str, lease: Lease, ttl_seconds: float
    ) -> bool | None:
        if not await self._fenced(session_id, lease):
            return None
        calls = self._calls.setdefault(session_id, {})
        if call_id in calls:
            claimed = calls[call_id]
            if claimed is None or claimed >= lease.epoch:
                return False
        calls[call_id] = lease.epoch
        return True

    async def call_answered(
        self, session_id: str, call_id: str, lease: Lease, ttl_seconds: float
    ) -> None:
        if await self._fenced(session_id, lease):
            self._calls.setdefault(session_id, {})[call_id] = None

    async def _fenced(self, session_id: str, lease: Lease | None) -> bool:
        """Whether a write under *lease* (None: nobody's) may happen now."""
        holder = await self._leases.holder(session_id)
        if lease is None:
            return holder is None
        return holder == lease or (holder is None and self._leases.epoch(session_id) == lease.epoch)

    async def remove(self, session_id: str) -> bool:
        self._calls.pop(session_id, None)
        return self._records.pop(session_id, None) is not None
