"""`RecordTable` on Valkey: a record is one JSON string that expires with the session's idle
TTL; a write under a lease is one Lua script that checks the lease first.

Keys, under the prefix: `record:{session}`, beside the lease table's `lease:{session}` and
`epoch:{session}` (the same prefix: the fence reads them).
"""

from __future__ import annotations

from typing import Any

import orjson
from glide import ConditionalChange, ExpirySet, ExpiryType, GlideClient

from .._leases import Lease
from ._leases import holder_value
from ._scripts import make_script, millis

# KEYS: record, lease, epoch. ARGV: the record, its ttl in ms, the holder value and epoch
# (both empty: a write with no lease, allowed only while nobody holds one).
_SAVE = make_script(
    """
    if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
    local current = redis.call('GET', KEYS[2])
    if ARGV[3] == '' then
        if current then return 0 end
    elseif current ~= ARGV[3] then
        if current or redis.call('GET', KEYS[3]) ~= ARGV[4] then return 0 end
    end
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return 1
    """
)


class ValkeyRecordTable:
    """`RecordTable` on a glide client, its keys under *prefix* (the lease table's)."""

    def __init__(self, client: GlideClient, prefix: str) -> None:
        self._client = client
        self._prefix = prefix

    def _key(self, session_id: str) -> str:
        return f"{self._prefix}record:{session_id}"

    async def create(self, session_id: str, record: dict[str, Any], ttl_seconds: float) -> bool:
        answer = await self._client.set(
            self._key(session_id),
            orjson.dumps(record),
            conditional_set=ConditionalChange.ONLY_IF_DOES_NOT_EXIST,
            expiry=ExpirySet(ExpiryType.MILLSEC, millis(ttl_seconds)),
        )
        return answer == "OK"

    async def load(self, session_id: str) -> dict[str, Any] | None:
        raw = await self._client.get(self._key(session_id))
        if raw is None:
            return None
        record = orjson.loads(raw)
        return record if isinstance(record, dict) else None

    async def save(
        self, session_id: str, record: dict[str, Any], ttl_seconds: float, lease: Lease | None
    ) -> bool:
        saved = await self._client.invoke_script(
            _SAVE,
            keys=[
                self._key(session_id),
                f"{self._prefix}lease:{session_id}",
                f"{self._prefix}epoch:{session_id}",
            ],
            args=[
                orjson.dumps(record),
                str(millis(ttl_seconds)),
                "" if lease is None else holder_value(lease),
                "" if lease is None else str(lease.epoch),
            ],
        )
        return bool(saved == 1)

    async def remove(self, session_id: str) -> bool:
        return bool(await self._client.delete([self._key(session_id)]) == 1)
