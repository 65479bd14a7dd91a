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


_ACQUIRE = make_script(
    """
    if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
    local epoch = redis.call('INCR', KEYS[2])
    redis.call('EXPIRE', KEYS[2], ARGV[3])
    redis.call('SET', KEYS[1], epoch .. ':' .. ARGV[1], 'PX', ARGV[2])
    return epoch
    """
)
# KEYS: lease and epoch key of each lease, in pairs; ARGV: the ttl, then each holder value and
# epoch. A lease whose key expired while nobody took it (the epoch is still the holder's: the
# store was away, or the renewal late) is taken back at the same epoch.
_RENEW = make_script(
    """
    local kept = {}
    for i = 1, #KEYS / 2 do
        local lease, epoch = KEYS[2 * i - 1], KEYS[2 * i]
        local mine, my_epoch = ARGV[2 * i], ARGV[2 * i + 1]
        local current = redis.call('GET', lease)
        if current == mine then
            redis.call('PEXPIRE', lease, ARGV[1])
            kept[i] = 1
        elseif not current and redis.call('GET', epoch) == my_epoch then
            redis.call('SET', lease, mine, 'PX', ARGV[1])
            kept[i] = 1
        else
            kept[i] = 0
        end
    end
    return kept
    """
)
# A release is a change of holder too: the epoch moves on, so the released hold cannot be
# taken back by a late renewal.
_RELEASE = make_script(
    """
    if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
    redis.call('DEL', KEYS[1])
    redis.call('INCR', KEYS[2])
    return 1
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

    def _lease_key(self, session_id: str) -> str:
        return f"{self._prefix}lease:{session_id}"

    def _epoch_key(self, session_id: str) -> str:
        return f"{self._prefix}epoch:{session_id}"

    async def acquire(self, session_id: str, replica: str, ttl_seconds: float) -> Lease | None:
        epoch = await self._client.invoke_script(
            _ACQUIRE,
            keys=[self._lease_key(session_id), self._epoch_key(session_id)],
            args=[replica, str(millis(ttl_seconds)), str(EPOCH_KEEP_SECONDS)],
        )
        if not isinstance(epoch, int) or epoch <= 0:
            return None
        return Lease(session_id, replica, epoch)

    async def renew(self, leases: Sequence[Lease], ttl_seconds: float) -> list[bool]:
        if not leases:
            return []
        keys, args = [], [str(millis(ttl_seconds))]
        for lease in leases:
            keys += [self._lease_key(lease.session_id), self._epoch_key(lease.session_id)]
            args += [holder_value(lease), str(lease.epoch)]
        kept = await self._client.invoke_script(_RENEW, keys=keys, args=args)
        if not isinstance(kept, list):
            return [False] * len(leases)
        return [flag == 1 for flag in kept]

    async def release(self, lease: Lease) -> bool:
        released = await self._client.invoke_script(
            _RELEASE,
            keys=[self._lease_key(lease.session_id), self._epoch_key(lease.session_id)],
            args=[holder_value(lease)],
        )
        return bool(released == 1)

    async def holder(self, session_id: str) -> Lease | None:
        value = await self._client.get(self._lease_key(session_id))
        if value is None:
            return None
        epoch, _, replica = (value.decode() if isinstance(value, bytes) else value).partition(":")
        return Lease(session_id, replica, int(epoch))
