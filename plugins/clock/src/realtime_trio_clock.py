"""realtime-trio-clock: the `get_current_time` tool, the current time in an IANA time zone.

Installed as a package, it is found through its `realtime_trio` entry point. The clock is the
module-level `now()`, which tests replace (`monkeypatch.setattr(realtime_trio_clock, "now", ...)`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field

from realtime_trio import Tool, ToolContext, hookimpl

# Not strftime("%A"), which follows the process's locale.
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class TimeQuery(BaseModel):
    """The arguments of `get_current_time`."""

    model_config = ConfigDict(extra="forbid")

    timezone: str = Field(
        default="UTC",
        description="An IANA time zone name, such as 'Europe/Paris' or 'America/New_York'.",
    )


def now() -> datetime:
    """The current time, timezone-aware."""
    return datetime.now(UTC)


async def get_current_time(context: ToolContext, arguments: TimeQuery) -> dict[str, Any]:
    key = arguments.timezone.strip()
    try:
        zone = ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # ValueError: a key that is no zone name ("../etc", "zone.tab"); OSError: unreadable.
        return {
            "ok": False,
            "error": f"Unknown time zone {key!r}. Use an IANA name such as 'Europe/Paris'.",
        }
    local = now().astimezone(zone)
    return {
        "ok": True,
        "timezone": key,
        "iso": local.isoformat(timespec="seconds"),
        "local_time": local.strftime("%H:%M"),
        "weekday": WEEKDAYS[local.weekday()],
        "utc_offset": format_offset(local.utcoffset() or timedelta(0)),
    }


def format_offset(offset: timedelta) -> str:
    """`+01:00`, `-03:30`, `+00:00`."""
    minutes = round(offset.total_seconds() / 60)
    sign = "-" if minutes < 0 else "+"
    hours, minutes = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{minutes:02d}"


@hookimpl
def rt_register_tools() -> list[Tool]:
    return [
        Tool(
            name="get_current_time",
            description=(
                "The current date and time in a time zone. Pass an IANA time zone name such as "
                "'Europe/Paris'; without one, the time is given in UTC."
            ),
            handler=get_current_time,
            parameters=TimeQuery,
            guidance=(
                "Call get_current_time whenever the user asks the time, the date or the day of "
                "the week somewhere (pass that place's IANA time zone); never guess them."
            ),
        )
    ]
