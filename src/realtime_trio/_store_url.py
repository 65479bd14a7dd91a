"""`STORE_URL`: where shared session state lives, parsed once, its password never shown.

`memory://` is this process alone (the default). `valkey://[user:password@]host:port[/db]` is a
Valkey (or Redis) server, `valkeys://` the same over TLS; `redis://` and `rediss://` are
accepted as their aliases.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

DEFAULT_VALKEY_PORT = 6379
_SCHEMES = {"valkey": False, "redis": False, "valkeys": True, "rediss": True}


class StoreURLError(ValueError):
    """A `STORE_URL` that cannot be used; the message never holds the password."""


@dataclass(frozen=True)
class StoreURL:
    """A parsed `STORE_URL`. `kind` is `memory` or `valkey`."""

    kind: str
    host: str = ""
    port: int = DEFAULT_VALKEY_PORT
    db: int = 0
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def shared(self) -> bool:
        return self.kind != "memory"

    def redacted(self) -> str:
        """The URL as it may be logged: the password replaced by `***`."""
        if not self.shared:
            return "memory://"
        scheme = "valkeys" if self.tls else "valkey"
        user = self.username or ""
        auth = f"{user}:***@" if self.password is not None else (f"{user}@" if user else "")
        return f"{scheme}://{auth}{self.host}:{self.port}/{self.db}"


def parse_store_url(text: str) -> StoreURL:
    """*text* as a `StoreURL`.

    Raises:
        StoreURLError: an unknown scheme, no host, a bad port or database number.
    """
    raw = text.strip()
    if raw in ("", "memory://", "memory:"):
        return StoreURL(kind="memory")
    scheme, _, rest = raw.partition("://")
    scheme = scheme.lower()
    if scheme in _SCHEMES and not rest:
        raise StoreURLError("names no host")
    if scheme not in _SCHEMES:
        raise StoreURLError(
            "must be memory:// or valkey://[user:password@]host:port[/db] "
            "(valkeys://, redis:// and rediss:// are accepted too)"
        )
    try:
        parts = urlsplit(f"{scheme}://{rest}")
        port = parts.port or DEFAULT_VALKEY_PORT
    except ValueError:
        raise StoreURLError("has a port that is not a number from 1 to 65535") from None
    if not parts.hostname:
        raise StoreURLError("names no host")
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise StoreURLError("has a database that is not a number (e.g. /0)")
    return StoreURL(
        kind="valkey",
        host=parts.hostname,
        port=port,
        db=int(path or 0),
        tls=_SCHEMES[scheme],
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )
