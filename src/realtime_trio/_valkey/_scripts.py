"""What the Valkey tables share: Lua scripts run by EVALSHA, and milliseconds for expiries."""

from __future__ import annotations

from glide import Script


def make_script(code: str) -> Script:
    return Script(code)  # type: ignore[no-untyped-call]  # glide leaves its constructor untyped


def millis(seconds: float) -> int:
    """*seconds* as whole milliseconds, at least one (an expiry of 0 is an error)."""
    return max(1, round(seconds * 1000))
