"""The clock plugin: its handler on a fixed clock, then through the server and the simulator.

The end-to-end tests use `realtime_trio.testing` (the `start_server` and `sim` fixtures, and
`open_call`), as a plugin kept in its own repository would. They find the plugin through its
entry point, so the package must be installed in the environment running the tests
(`pip install -e plugins/clock`; `make test` does it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import realtime_trio_clock
from pydantic import ValidationError
from realtime_trio_clock import TimeQuery, get_current_time

from realtime_trio.testing import SimControl, StartServer, open_call

# A Wednesday, 13:05 in UTC: 14:05 in Paris (winter time, +01:00).
WINTER = datetime(2025, 1, 15, 13, 5, tzinfo=UTC)
# A Tuesday, 12:00 in UTC: 14:00 in Paris (summer time, +02:00).
SUMMER = datetime(2025, 7, 1, 12, 0, tzinfo=UTC)

# The clock needs nothing from its context.
NO_CONTEXT: Any = None


@pytest.fixture
def set_clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[datetime], None]:
    def set_to(moment: datetime) -> None:
        monkeypatch.setattr(realtime_trio_clock, "now", lambda: moment)

    return set_to


async def ask(timezone: str | None = None) -> dict[str, Any]:
    arguments = TimeQuery() if timezone is None else TimeQuery(timezone=timezone)
    return await get_current_time(NO_CONTEXT, arguments)


# -- the handler --------------------------------------------------------------------------


async def test_a_known_zone_gets_its_local_time(set_clock: Callable[[datetime], None]) -> None:
    set_clock(WINTER)

    assert await ask("Europe/Paris") == {
        "ok": True,
        "timezone": "Europe/Paris",
        "iso": "2025-01-15T14:05:00+01:00",
        "local_time": "14:05",
        "weekday": "Wednesday",
        "utc_offset": "+01:00",
    }


async def test_summer_time_moves_the_offset(set_clock: Callable[[datetime], None]) -> None:
    set_clock(SUMMER)

    answer = await ask("Europe/Paris")

    assert (answer["local_time"], answer["weekday"], answer["utc_offset"]) == (
        "14:00",
        "Tuesday",
        "+02:00",
    )


async def test_a_negative_half_hour_offset_and_the_day_before(
    set_clock: Callable[[datetime], None],
) -> None:
    set_clock(datetime(2025, 1, 15, 2, 0, tzinfo=UTC))

    assert await ask("America/St_Johns") == {
        "ok": True,
        "timezone": "America/St_Johns",
        "iso": "2025-01-14T22:30:00-03:30",
        "local_time": "22:30",
        "weekday": "Tuesday",
        "utc_offset": "-03:30",
    }


async def test_without_a_zone_the_answer_is_in_utc(set_clock: Callable[[datetime], None]) -> None:
    set_clock(WINTER)

    assert await ask() == {
        "ok": True,
        "timezone": "UTC",
        "iso": "2025-01-15T13:05:00+00:00",
        "local_time": "13:05",
        "weekday": "Wednesday",
        "utc_offset": "+00:00",
    }


@pytest.mark.parametrize("zone", ["Mars/Base", "Europe", "../etc", "/etc/passwd", ""])
async def test_an_unknown_zone_is_a_clear_error(zone: str) -> None:
    assert await ask(zone) == {
        "ok": False,
        "error": f"Unknown time zone {zone!r}. Use an IANA name such as 'Europe/Paris'.",
    }


async def test_the_real_clock_is_used_by_default() -> None:
    before = datetime.now(UTC).replace(microsecond=0)

    answer = await ask("Asia/Tokyo")

    assert answer["utc_offset"] == "+09:00"
    assert datetime.fromisoformat(answer["iso"]) >= before


def test_the_arguments_refuse_unknown_keys() -> None:
    with pytest.raises(ValidationError, match="zone"):
        TimeQuery.model_validate({"zone": "Europe/Paris"})


# -- through the server and the simulator ---------------------------------------------------


@pytest.fixture
async def client(start_server: StartServer) -> AsyncIterator[httpx.AsyncClient]:
    """A server loading installed plugins, as a deployment with the package installed does."""
    base_url = await start_server(plugin_entry_points=True)
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        yield http


async def test_the_server_lists_the_tool_of_the_clock_plugin(client: httpx.AsyncClient) -> None:
    response = await client.get("/tools")

    assert response.status_code == 200, response.text
    (listed,) = [tool for tool in response.json()["tools"] if tool["name"] == "get_current_time"]
    assert listed == {
        "name": "get_current_time",
        "description": realtime_trio_clock.rt_register_tools()[0].description,
        "parameters": {
            "type": "object",
            "properties": {
                "timezone": {
                    "type": "string",
                    "default": "UTC",
                    "description": (
                        "An IANA time zone name, such as 'Europe/Paris' or 'America/New_York'."
                    ),
                    "title": "Timezone",
                }
            },
            "additionalProperties": False,
        },
        "plugin": "clock",
        "source": "plugin",
    }


async def test_the_model_asks_the_time_in_paris(
    client: httpx.AsyncClient, sim: SimControl, set_clock: Callable[[datetime], None]
) -> None:
    set_clock(WINTER)
    call = await open_call(client, sim)
    (tool,) = realtime_trio_clock.rt_register_tools()
    (attached,) = await call.client_events("session.update")
    assert tool.definition() in attached["session"]["tools"]
    assert tool.guidance in attached["session"]["instructions"]

    answered = await call.call_tool("get_current_time", {"timezone": "Europe/Paris"})

    assert answered.output == {
        "ok": True,
        "timezone": "Europe/Paris",
        "iso": "2025-01-15T14:05:00+01:00",
        "local_time": "14:05",
        "weekday": "Wednesday",
        "utc_offset": "+01:00",
    }
    assert answered.response_created is True


async def test_the_model_asking_for_an_unknown_zone_is_told_what_to_pass(
    client: httpx.AsyncClient, sim: SimControl
) -> None:
    call = await open_call(client, sim)

    answered = await call.call_tool("get_current_time", {"timezone": "Mars/Base"})

    assert answered.output == {
        "ok": False,
        "error": "Unknown time zone 'Mars/Base'. Use an IANA name such as 'Europe/Paris'.",
    }
    assert answered.response_created is True
