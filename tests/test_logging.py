"""One access-log line per request, and no secret in any log line."""

from __future__ import annotations

import logging
import queue
import re
from typing import Any

import httpx
import pytest

from realtime_trio._logs import DroppingQueueHandler, RedactingFormatter
from realtime_trio.simulator import RunningSimulator
from sim_client import closed_port

ACCESS_LINE = re.compile(r"^(?P<method>[A-Z]+) (?P<path>\S+) (?P<status>\d{3}) (?P<ms>\d+\.\d)ms$")


def access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "realtime_trio.access"]


async def test_each_request_is_logged_on_one_line(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)

    await client.post("/token", json={"voice": "marin"})
    await client.post("/token", json={"voice": 1})
    await client.get("/missing")

    lines = [ACCESS_LINE.match(r.getMessage()) for r in access_records(caplog)]
    assert all(lines), [r.getMessage() for r in access_records(caplog)]
    fields = [(m["method"], m["path"], m["status"]) for m in lines if m]
    assert fields == [
        ("POST", "/token", "200"),
        ("POST", "/token", "400"),
        ("GET", "/missing", "404"),
    ]
    first = access_records(caplog)[0]
    assert (first.method, first.path, first.status) == ("POST", "/token", 200)  # type: ignore[attr-defined]
    assert first.duration_ms >= 0  # type: ignore[attr-defined]


async def test_no_log_line_holds_the_api_key_or_a_full_client_secret(
    start_server: Any, simulator: RunningSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    good, wrong = simulator.state.api_keys.copy().pop(), "sk-proj-not-the-key-9f8e7d6c5b4a"
    urls = [
        await start_server(),
        await start_server(openai_api_key=wrong),
        await start_server(openai_base_url=f"http://127.0.0.1:{closed_port()}/v1"),
        await start_server(openai_api_key=None),
    ]

    statuses = []
    for url in urls:
        async with httpx.AsyncClient(base_url=url) as http:
            statuses.append((await http.post("/token", json={"voice": "marin"})).status_code)

    assert statuses == [200, 502, 502, 503]
    minted = list(simulator.state.secrets)
    assert len(minted) == 1
    text = caplog.text
    assert "minted client secret ek_" in text
    for secret in [good, wrong, wrong[-4:], *minted]:
        assert secret not in text


def test_the_formatter_masks_keys_and_secrets() -> None:
    formatter = RedactingFormatter("%(message)s", secrets=("my-odd-key-format",))
    record = logging.LogRecord(
        "x",
        logging.INFO,
        __file__,
        1,
        "key %s, other sk-abc123def456, secret ek_68af296e8e408191a1120ab6383263c2",
        ("my-odd-key-format",),
        None,
    )

    line = formatter.format(record)

    assert "my-odd-key-format" not in line
    assert "sk-abc123def456" not in line
    assert "ek_68af296e8e408191a1120ab6383263c2" not in line
    assert "ek_68af…" in line


def test_a_full_log_queue_drops_records_and_then_says_how_many() -> None:
    """Logging never waits on a slow writer: what does not fit is dropped, then counted."""
    records: queue.Queue[logging.LogRecord] = queue.Queue(2)
    handler = DroppingQueueHandler(records)
    logger = logging.getLogger("test.dropping")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        for n in range(5):
            logger.warning("line %d", n)  # returns at once although nothing drains the queue
        assert handler.dropped == 3
        records.get_nowait()
        records.get_nowait()
        logger.warning("after the jam")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True

    assert [records.get_nowait().getMessage() for _ in range(2)] == [
        "log queue full: dropped 3 records",
        "after the jam",
    ]


async def test_every_answer_carries_a_request_id_its_access_line_has_too(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """The client's own id when it is sane, else a new one; errors and routing misses too."""
    caplog.set_level(logging.INFO)

    echoed = await client.get("/healthz", headers={"X-Request-Id": "trace-1:a.b_c-D"})
    missing = await client.get("/missing", headers={"X-Request-Id": "not sane"})
    invalid = await client.post("/token", json={"voice": 1})
    too_long = await client.get("/healthz", headers={"X-Request-Id": "x" * 129})

    ids = [r.headers["x-request-id"] for r in (echoed, missing, invalid, too_long)]
    assert ids[0] == "trace-1:a.b_c-D"
    assert all(re.fullmatch(r"[0-9a-f]{32}", rid) for rid in ids[1:])
    assert len(set(ids)) == 4
    assert [r.request_id for r in access_records(caplog)] == ids  # type: ignore[attr-defined]
