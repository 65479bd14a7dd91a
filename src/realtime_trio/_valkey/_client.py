"""Opening one glide client for a `STORE_URL`, and closing it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from glide import (
    GlideClient,
    GlideClientConfiguration,
    Logger,
    LogLevel,
    NodeAddress,
    ServerCredentials,
)

from .._store_url import StoreURL

# glide's default is 250 ms: a loaded server or a GC pause here would fail healthy requests.
REQUEST_TIMEOUT_MS = 2000


@asynccontextmanager
async def open_valkey(
    url: StoreURL, *, request_timeout_ms: int = REQUEST_TIMEOUT_MS, name: str | None = None
) -> AsyncIterator[GlideClient]:
    """A client for *url*, closed when the block ends.

    It connects lazily (`create()` would otherwise block the event loop until connected) and
    multiplexes every command on one connection: never use a blocking command on it.
    """
    Logger.set_logger_config(LogLevel.OFF)  # its core writes to stderr, past our redaction
    credentials = (
        ServerCredentials(password=url.password, username=url.username)
        if url.password is not None
        else None
    )
    config = GlideClientConfiguration(
        [NodeAddress(url.host, url.port)],
        use_tls=url.tls,
        credentials=credentials,
        database_id=url.db,
        request_timeout=request_timeout_ms,
        client_name=name,
        lazy_connect=True,
    )
    client = await GlideClient.create(config)
    try:
        yield client
    finally:
        await client.close()
