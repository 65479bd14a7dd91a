"""Who may use the server: `SERVER_API_KEYS` as bearer tokens, checked before any handler.

The server spends its owner's OpenAI money on behalf of whoever reaches it, so when keys are
set every endpoint but `/healthz` (a load balancer's probe) needs one of them. Keys are compared
in constant time, each of them every time, so neither a key nor which key matched leaks through
timing. CORS preflights (`OPTIONS`) carry no credentials and pass through.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from .errors import Unauthorized

OPEN_PATHS = frozenset({"/healthz"})
HEADER_WHITESPACE = " \t"


def authorize(method: str, path: str, authorization: str | None, keys: Sequence[str]) -> None:
    """Raise `Unauthorized` unless the request may pass (no keys set, an open path, a preflight,
    or a bearer token equal to one of *keys*)."""
    if not keys or path in OPEN_PATHS or method == "OPTIONS":
        return
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip(HEADER_WHITESPACE)  # HTTP's own, not Unicode's (no-break space, ...)
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("Missing API key: send Authorization: Bearer <key>")
    given = token.encode()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given, key.encode())
    if not matched:
        raise Unauthorized("Invalid API key")
