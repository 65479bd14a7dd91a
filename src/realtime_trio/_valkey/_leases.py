"""`LeaseTable` on Valkey: each change of holder one Lua script, fenced by the session's epoch.

Keys, under the table's prefix: `lease:{session}` holds `<epoch>:<replica>` and expires with the
lease; `epoch:{session}` counts the session's holders. The epoch key outlives any lease by far
(`EPOCH_KEEP_SECONDS`), so an epoch never goes back while a paused holder could still come back
with an older one; and since a holder is named by its epoch *and* its replica (an incarnation:
host and process id), even an epoch counted again after that key expired cannot match a stale
holder. Scripts run with EVALSHA (glide's `Script`), which, unlike functions, survive a server
restarted without persistence: they are sent again when the server does not know them.
"""

from __future__ import annotations

from collections.abc import Sequence

from glide import GlideClient

from .._leases import Lease
from ._scripts import make_script, millis

EPOCH_KEEP_SECONDS = 7 * 24 * 3600


# The store's clock in milliseconds, for the takeover index's deadlines (scripts never read
# the replicas' clocks).
_NOW = """
local clock = redis.call('TIME')
local now = clock[1] * 1000 + math.floor(clock[2] / 1000)
"""

# KEYS: lease, epoch, the takeover index. ARGV: replica, ttl ms, epoch keep s, session.
_ACQUIRE = make_script(
    _NOW
    + """
    if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
    local epoch = redis.call('INCR', KEYS[2])
    redis.call('EXPIRE', KEYS[2], ARGV[3])
    redis.call('SET', KEYS[1], epoch .. ':' .. ARGV[1], 'PX', ARGV[2])
    redis.call('ZADD', KEYS[3], now + tonumber(ARGV[2]), ARGV[4])
    return epoch
    """
)

# KEYS: the takeover index, then the lease and epoch key of each lease, in pairs; ARGV: the
# ttl, then each holder value, epoch and session. A lease whose key expired while nobody took
# it (the epoch is still the holder's: the store was away, or the renewal late) is taken back
# at the same epoch.
_RENEW = make_script(
    _NOW
    + """
    local kept = {}
    local ttl = tonumber(ARGV[1])
    for i = 1, (#KEYS - 1) / 2 do
        local lease, epoch = KEYS[2 * i], KEYS[2 * i + 1]
        local mine, my_epoch, session = ARGV[3 * i - 1], ARGV[3 * i], ARGV[3 * i + 1]
        local current = redis.call('GET', lease)
        if current == mine then
            redis.call('PEXPIRE', lease, ttl)
            kept[i] = 1
        elseif not current and redis.call('GET', epoch) == my_epoch then
            redis.call('SET', lease, mine, 'PX', ttl)
            kept[i] = 1
        else
            kept[i] = 0
        end
        if kept[i] == 1 then redis.call('ZADD', KEYS[1], now + ttl, session) end
    end
    return kept
    """
)

# A release is a change of holder too: the epoch moves on, so the released hold cannot be
# taken back by a late renewal; the session is offered for takeover at once. KEYS: lease,
# epoch, index. ARGV: holder value, session, and "forget" to stop offering it (it ended).
_RELEASE = make_script(
    """
    if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
    redis.call('DEL', KEYS[1])
    redis.call('INCR', KEYS[2])
    if ARGV[3] == 'forget' then
        redis.call('ZREM', KEYS[3], ARGV[2])
    else
        redis.call('ZADD', KEYS[3], 0, ARGV[2])
    end
    return 1
    """
)

# KEYS: lease, epoch, index. ARGV: holder value, new replica, ttl ms, session.
_TRANSFER = make_script(
    _NOW
    + """
    if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
    local epoch = redis.call('INCR', KEYS[2])
    redis.call('SET', KEYS[1], epoch .. ':' .. ARGV[2], 'PX', ARGV[3])
    redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), ARGV[4])
    return epoch
    """
)

# KEYS: index. ARGV: limit. Sessions whose lease deadline has passed.
_ORPHANS = make_script(
    _NOW
    + """
    return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[1])
    """
)

# KEYS: the replicas' index. ARGV: replica, ttl ms. The replicas alive now.
_HEARTBEAT = make_script(
    _NOW
    + """
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
    return redis.call('ZCARD', KEYS[1])
    """
)


def holder_value(lease: Lease) -> str:
    return f"{lease.epoch}:{lease.replica}"


class ValkeyLeaseTable:
    """`LeaseTable` on a glide client, its keys under *prefix*.

    Renewal takes all of a replica's leases in one script call: one round trip a period, not
    one per session. Multi-key scripts need every key on one node: a standalone server (or a
    cluster with the prefix as a hash tag).
    """

    def __init__(self, client: GlideClient, prefix: str) -> None:
        self._client = client
        self._prefix = prefix
        self._index = f"{prefix}leases"  # session -> lease deadline (ms), for takeovers

    def _lease_key(self, session_id: str) -> str:
        return f"{self._prefix}lease:{session_id}"

    def _epoch_key(self, session_id: str) -> str:
        return f"{self._prefix}epoch:{session_id}"

    def _keys(self, session_id: str) -> list[str]:
        return [self._lease_key(session_id), self._epoch_key(session_id), self._index]

    async def acquire(self, session_id: str, replica: str, ttl_seconds: float) -> Lease | None:
        epoch = await self._client.invoke_script(
            _ACQUIRE,
            keys=self._keys(session_id),
            args=[replica, str(millis(ttl_seconds)), str(EPOCH_KEEP_SECONDS), session_id],
        )
        if not isinstance(epoch, int) or epoch <= 0:
            return None
        return Lease(session_id, replica, epoch)

    async def renew(self, leases: Sequence[Lease], ttl_seconds: float) -> list[bool]:
        if not leases:
            return []
        keys, args = [self._index], [str(millis(ttl_seconds))]
        for lease in leases:
            keys += [self._lease_key(lease.session_id), self._epoch_key(lease.session_id)]
            args += [holder_value(lease), str(lease.epoch), lease.session_id]
        kept = await self._client.invoke_script(_RENEW, keys=keys, args=args)
        if not isinstance(kept, list):
            return [False] * len(leases)
        return [flag == 1 for flag in kept]

    async def release(self, lease: Lease) -> bool:
        return await self._release(lease, forget=False)

    async def forget(self, lease: Lease) -> bool:
        return await self._release(lease, forget=True)

    async def _release(self, lease: Lease, *, forget: bool) -> bool:
        released = await self._client.invoke_script(
            _RELEASE,
            keys=self._keys(lease.session_id),
            args=[holder_value(lease), lease.session_id, "forget" if forget else ""],
        )
        return bool(released == 1)

    async def transfer(self, lease: Lease, replica: str, ttl_seconds: float) -> Lease | None:
        epoch = await self._client.invoke_script(
            _TRANSFER,
            keys=self._keys(lease.session_id),
            args=[holder_value(lease), replica, str(millis(ttl_seconds)), lease.session_id],
        )
        if not isinstance(epoch, int) or epoch <= 0:
            return None
        return Lease(lease.session_id, replica, epoch)

    async def orphans(self, limit: int) -> list[str]:
        found = await self._client.invoke_script(_ORPHANS, keys=[self._index], args=[str(limit)])
        if not isinstance(found, list):
            return []
        return [item.decode() if isinstance(item, bytes) else str(item) for item in found]

    async def heartbeat(self, replica: str, ttl_seconds: float) -> int:
        alive = await self._client.invoke_script(
            _HEARTBEAT, keys=[f"{self._prefix}replicas"], args=[replica, str(millis(ttl_seconds))]
        )
        return alive if isinstance(alive, int) else 1

    async def holder(self, session_id: str) -> Lease | None:
        value = await self._client.get(self._lease_key(session_id))
        if value is None:
            return None
        epoch, _, replica = (value.decode() if isinstance(value, bytes) else value).partition(":")
        return Lease(session_id, replica, int(epoch))
