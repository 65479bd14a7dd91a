"""The shared store's tables on one glide client: what `serve` opens for a `STORE_URL`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from glide import GlideError

from .._replica import StoreTables
from .._store_url import StoreURL
from ._client import open_valkey
from ._inbox import ValkeyInbox
from ._leases import ValkeyLeaseTable
from ._rate_limit import ValkeyRateLimiter
from ._records import ValkeyRecordTable


@asynccontextmanager
async def open_store_tables(url: StoreURL, *, prefix: str, name: str) -> AsyncIterator[StoreTables]:
    """The tables on the Valkey server *url* names, keys under *prefix*; closed on exit."""
    async with open_valkey(url, name=name) as client:

        def rate_limiter(per_minute: int, burst: int) -> ValkeyRateLimiter:
            return ValkeyRateLimiter(client, prefix, per_minute=per_minute, burst=burst)

        yield StoreTables(
            kind="valkey",
            leases=ValkeyLeaseTable(client, prefix),
            records=ValkeyRecordTable(client, prefix),
            inbox=ValkeyInbox(client, prefix),
            ping=client.ping,
            errors=(GlideError,),
            rate_limiter=rate_limiter,
        )
