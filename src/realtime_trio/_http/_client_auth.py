"""Who may use the server: `SERVER_API_KEYS` as bearer tokens, checked before any handler.

The server spends its owner's OpenAI money on behalf of whoever reaches it, so when keys are
set every endpoint but `/healthz` and `/readyz` (a load balancer's probes) needs one of them
(the `/inspector` page and its files are open too: they hold no data, and the page asks for one).
Keys are compared in constant time, each of them every time, so neither a key nor which key
matched leaks through timing. CORS preflights (`OPTIONS`) carry no credentials and pass through.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from .._errors import Unauthorized

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/inspector"})
# The inspector page's files: like the page, they hold no data (the page asks for a key).
OPEN_PREFIXES = ("/inspector/",)
HEADER_WHITESPACE = " \t"


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, None for anything else.

    Only HTTP's own whitespace around it is ignored, not Unicode's (no-break space, ...).
    """
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip(HEADER_WHITESPACE)
    return token if scheme.lower() == "bearer" and token else None


def authorize(method: str, path: str, authorization: str | None, keys: Sequence[str]) -> None:
    """Raise `Unauthorized` unless the request may pass (no keys set, an open path, a preflight,
    or a bearer token equal to one of *keys*)."""
    if not keys or path in OPEN_PATHS or method == "OPTIONS" or path.startswith(OPEN_PREFIXES):
        return
    token = bearer_token(authorization)
    if token is None:
        raise Unauthorized("Missing API key: send Authorization: Bearer <key>")
    given = token.encode()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given, key.encode())
    if not matched:
        raise Unauthorized("Invalid API key")
