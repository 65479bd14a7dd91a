"""`Inbox` on Valkey: one list per replica, `inbox:{replica}`, popped without blocking."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
from glide import Batch, GlideClient

from .._inbox import INBOX_KEEP_SECONDS, RECEIVE_BATCH, fresh


class ValkeyInbox:
    """`Inbox` on a glide client, its keys under *prefix*. Deadlines are wall-clock seconds:
    replicas' clocks must agree to within the deadlines used (NTP does it)."""

    def __init__(
        self, client: GlideClient, prefix: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._clock = clock

    def _key(self, replica: str) -> str:
        return f"{self._prefix}inbox:{replica}"

    async def send(self, replica: str, message: dict[str, Any], ttl_seconds: float) -> None:
        key = self._key(replica)
        batch = Batch(is_atomic=True)
        batch.rpush(key, [orjson.dumps({**message, "deadline": self._clock() + ttl_seconds})])
        batch.expire(key, INBOX_KEEP_SECONDS)
        await self._client.exec(batch, raise_on_error=True)

    async def receive(self, replica: str) -> list[dict[str, Any]]:
        raw = await self._client.lpop_count(self._key(replica), RECEIVE_BATCH)
        if not raw:
            return []
        messages = [orjson.loads(item) for item in raw]
        return fresh([m for m in messages if isinstance(m, dict)], self._clock())
