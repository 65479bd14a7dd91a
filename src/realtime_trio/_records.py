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

    async def remove(self, session_id: str) -> bool: ...


class MemoryRecordTable:
    """`RecordTable` in this process's memory, fenced by *leases* (no expiry: the session
    manager's idle TTL ends sessions in one process)."""

    def __init__(self, leases: MemoryLeaseTable) -> None:
        self._leases = leases
        self._records: dict[str, dict[str, Any]] = {}

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
        holder = await self._leases.holder(session_id)
        if lease is None:
            allowed = holder is None
        else:
            allowed = holder == lease or (
                holder is None and self._leases.epoch(session_id) == lease.epoch
            )
        if allowed:
            self._records[session_id] = record
        return allowed

    async def remove(self, session_id: str) -> bool:
        return self._records.pop(session_id, None) is not None
