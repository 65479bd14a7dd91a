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

# The fence: whether a write under the holder value ARGV[h] at epoch ARGV[h + 1] (both empty:
# no lease, allowed only while nobody holds one) may happen, given the lease and epoch keys.
_FENCE = """
local function fenced(lease_key, epoch_key, mine, my_epoch)
    local current = redis.call('GET', lease_key)
    if mine == '' then return not current end
    if current == mine then return true end
    return (not current) and redis.call('GET', epoch_key) == my_epoch
end
"""

# KEYS: record, lease, epoch of each record, in triples. ARGV: the ttl in ms, then each record,
# holder value and epoch. One script for a replica's whole batch of writes.
_SAVE = make_script(
    _FENCE
    + """
    local saved = {}
    for i = 1, #KEYS / 3 do
        local record = KEYS[3 * i - 2]
        saved[i] = 0
        if redis.call('EXISTS', record) == 1
            and fenced(KEYS[3 * i - 1], KEYS[3 * i], ARGV[3 * i], ARGV[3 * i + 1]) then
            redis.call('SET', record, ARGV[3 * i - 1], 'PX', ARGV[1])
            saved[i] = 1
        end
    end
    return saved
    """
)

# KEYS: the session's calls (a hash: call id -> the epoch answering it, or "done"), lease,
# epoch. ARGV: call id, holder value, epoch, ttl ms, and "done" once the answer was delivered.
# A call claimed at an older epoch and never done (its holder died answering it) is claimed
# again by the successor.
_CLAIM_CALL = make_script(
    _FENCE
    + """
    if not fenced(KEYS[2], KEYS[3], ARGV[2], ARGV[3]) then return -1 end
    local claimed = redis.call('HGET', KEYS[1], ARGV[1])
    local taken = 0
    if ARGV[5] == 'done' then
        redis.call('HSET', KEYS[1], ARGV[1], 'done')
    elseif not claimed or (claimed ~= 'done' and tonumber(claimed) < tonumber(ARGV[3])) then
        redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
        taken = 1
    end
    redis.call('PEXPIRE', KEYS[1], ARGV[4])
    return taken
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

    def _fence_keys(self, session_id: str) -> list[str]:
        return [f"{self._prefix}lease:{session_id}", f"{self._prefix}epoch:{session_id}"]

    async def save(
        self, session_id: str, record: dict[str, Any], ttl_seconds: float, lease: Lease | None
    ) -> bool:
        keys = [self._key(session_id), *self._fence_keys(session_id)]
        args = [str(millis(ttl_seconds)), *_fenced_write(record, lease)]
        saved = await self._client.invoke_script(_SAVE, keys=keys, args=args)
        return isinstance(saved, list) and saved == [1]

    async def save_many(
        self, records: list[tuple[str, dict[str, Any], Lease]], ttl_seconds: float
    ) -> list[bool]:
        if not records:
            return []
        keys: list[str] = []
        args: list[str | bytes] = [str(millis(ttl_seconds))]
        for session_id, record, lease in records:
            keys += [self._key(session_id), *self._fence_keys(session_id)]
            args += _fenced_write(record, lease)
        saved = await self._client.invoke_script(_SAVE, keys=keys, args=args)
        if not isinstance(saved, list):
            return [False] * len(records)
        return [flag == 1 for flag in saved]

    async def claim_call(
        self, session_id: str, call_id: str, lease: Lease, ttl_seconds: float
    ) -> bool | None:
        claimed = await self._call(session_id, call_id, lease, ttl_seconds, done=False)
        return None if claimed == -1 else claimed == 1

    async def call_answered(
        self, session_id: str, call_id: str, lease: Lease, ttl_seconds: float
    ) -> None:
        await self._call(session_id, call_id, lease, ttl_seconds, done=True)

    async def _call(
        self, session_id: str, call_id: str, lease: Lease, ttl_seconds: float, *, done: bool
    ) -> object:
        return await self._client.invoke_script(
            _CLAIM_CALL,
            keys=[f"{self._prefix}calls:{session_id}", *self._fence_keys(session_id)],
            args=[
                call_id,
                holder_value(lease),
                str(lease.epoch),
                str(millis(ttl_seconds)),
                "done" if done else "",
            ],
        )

    async def remove(self, session_id: str) -> bool:
        removed = await self._client.delete(
            [self._key(session_id), f"{self._prefix}calls:{session_id}"]
        )
        return bool(removed >= 1)


def _fenced_write(record: dict[str, Any], lease: Lease | None) -> list[str | bytes]:
    """A record's ARGV triple: its JSON, the holder value and the epoch (empty: no lease)."""
    if lease is None:
        return [orjson.dumps(record), "", ""]
    return [orjson.dumps(record), holder_value(lease), str(lease.epoch)]
