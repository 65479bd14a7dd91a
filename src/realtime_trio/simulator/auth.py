"""`Authorization: Bearer ...` as the real API checks it, with its 401 wording."""

from __future__ import annotations

from werkzeug.datastructures import Headers

from .errors import OpenAIError
from .state import MintedSecret, SimulatorState


def bearer_key(headers: Headers) -> str:
    """The key of a `Bearer` authorization header.

    Raises:
        OpenAIError: 401, no key was given.
    """
    scheme, _, key = headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise OpenAIError(
            401,
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        )
    return key.strip()


def incorrect_key(key: str) -> OpenAIError:
    """The 401 for a key the API does not know (or an expired client secret)."""
    return OpenAIError(
        401,
        f"Incorrect API key provided: {masked(key)}. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        code="invalid_api_key",
    )


def require_api_key(state: SimulatorState, headers: Headers) -> str:
    """The standard API key the request carries.

    Raises:
        OpenAIError: 401, no key, or not a standard key of this simulator.
    """
    key = bearer_key(headers)
    if not state.is_api_key(key):
        raise incorrect_key(key)
    return key


def api_key_or_secret(state: SimulatorState, headers: Headers) -> tuple[str, MintedSecret | None]:
    """The key, and the minted secret it is if it is an unexpired client secret.

    Raises:
        OpenAIError: 401, no key, or neither a standard key nor a live client secret.
    """
    key = bearer_key(headers)
    if state.is_api_key(key):
        return key, None
    secret = state.live_secret(key)
    if secret is None:
        raise incorrect_key(key)
    return key, secret


def masked(key: str) -> str:
    """The key as OpenAI echoes it: a few characters at each end."""
    if len(key) <= 10:
        return "*" * len(key)
    return key[:6] + "*" * (len(key) - 10) + key[-4:]
