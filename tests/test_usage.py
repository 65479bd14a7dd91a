"""Usage and cost per session, summed from what crossed the sideband, and caps that hang up.

The simulator reports usage on every `response.done` (and on each input transcription) in the
API's shapes; costs are priced from the package's table (`pricing.json`) or `PRICING_FILE`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from realtime_trio import hookimpl
from realtime_trio._pricing import Pricing, PricingError
from realtime_trio._usage import COUNTS, MAX_UNCOUNTED, SessionUsage, response_counts
from realtime_trio.testing import StartServer, open_call
from sim_client import SimControl, session_state, wait_until

# gpt-realtime, USD per 1M tokens (its model page): text 4 / 0.40 cached / 16 out; audio 32 /
# 0.40 cached / 64 out.
TEXT_IN, TEXT_CACHED, TEXT_OUT, AUDIO_IN, AUDIO_CACHED, AUDIO_OUT = 4, 0.4, 16, 32, 0.4, 64


def response_cost(usage: dict[str, Any]) -> float:
    """What one `response.done` usage costs on gpt-realtime, priced by hand."""
    details, out = usage["input_token_details"], usage["output_token_details"]
    cached = details["cached_tokens_details"]
    return (
        (details["text_tokens"] - cached["text_tokens"]) * TEXT_IN
        + cached["text_tokens"] * TEXT_CACHED
        + (details["audio_tokens"] - cached["audio_tokens"]) * AUDIO_IN
        + cached["audio_tokens"] * AUDIO_CACHED
        + out["text_tokens"] * TEXT_OUT
        + out["audio_tokens"] * AUDIO_OUT
    ) / 1_000_000


def test_cached_input_is_priced_at_the_cached_rate_and_never_twice() -> None:
    usage = {
        "input_tokens": 1000,
        "output_tokens": 300,
        "total_tokens": 1300,
        "input_token_details": {
            "text_tokens": 600,
            "audio_tokens": 400,
            "image_tokens": 0,
            "cached_tokens": 500,  # a part of the 1000 above, not more of them
            "cached_tokens_details": {"text_tokens": 400, "audio_tokens": 100, "image_tokens": 0},
        },
        "output_token_details": {"text_tokens": 100, "audio_tokens": 200},
    }

    counted = SessionUsage(pricing=Pricing.load())
    counts = response_counts(usage)
    assert counts is not None
    counted.add_response("gpt-realtime", counts)
    view = counted.as_json()

    assert view["costUsd"] == pytest.approx(response_cost(usage))
    assert view["costUsd"] == pytest.approx(
        (200 * 4 + 400 * 0.4 + 300 * 32 + 100 * 0.4 + 100 * 16 + 200 * 64) / 1e6
    )
    assert view["inputTokenDetails"] == {
        "textTokens": 600,
        "audioTokens": 400,
        "imageTokens": 0,
        "cachedTokens": 500,
    }
    assert view["outputTokenDetails"] == {"textTokens": 100, "audioTokens": 200}
    assert (view["inputTokens"], view["outputTokens"], view["totalTokens"]) == (1000, 300, 1300)


def test_cached_input_without_a_breakdown_counts_as_text_within_the_text_input() -> None:
    usage = {
        "input_tokens": 700,
        "output_tokens": 0,
        "total_tokens": 700,
        "input_token_details": {"text_tokens": 200, "audio_tokens": 500, "cached_tokens": 300},
    }
    counted = SessionUsage(pricing=Pricing.load())
    counts = response_counts(usage)
    assert counts is not None
    counted.add_response("gpt-realtime", counts)
    counted.add_response("gpt-realtime", counts)  # summed, then priced: the same as one by one

    # The cheapest reading: the cached part is text, at most all of the text input.
    one = (0 * TEXT_IN + 200 * TEXT_CACHED + 500 * AUDIO_IN) / 1e6
    assert counted.as_json()["costUsd"] == pytest.approx(2 * one)


def test_a_model_with_no_known_price_has_no_cost() -> None:
    usage = {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}
    counted = SessionUsage(pricing=Pricing.load())
    counts = response_counts(usage)
    assert counts is not None
    counted.add_response("gpt-made-up", counts)
    assert counted.as_json()["costUsd"] is None
    assert counted.as_json()["totalTokens"] == 15


def test_usage_survives_a_snapshot_and_a_restore() -> None:
    counted = SessionUsage(pricing=Pricing.load())
    counts = response_counts({"input_tokens": 10, "output_tokens": 5, "total_tokens": 15})
    assert counts is not None
    counted.add_response("gpt-realtime", counts)
    restored = SessionUsage.restore(json.loads(json.dumps(counted.snapshot())))
    restored.pricing = counted.pricing
    assert restored.as_json() == counted.as_json()


def test_a_pricing_file_adds_models_and_a_bad_one_is_named(tmp_path: Path) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"my-model": {"text": {"input": 1, "output": 2}}}))
    pricing = Pricing.load(prices)
    mine = pricing.price("my-model")
    assert mine is not None
    assert (mine.of("text").input, mine.of("text").cached_input, mine.of("text").output) == (
        1,
        1,
        2,
    )
    assert pricing.price("gpt-realtime") is not None  # the package's table is still there

    prices.write_text(json.dumps({"my-model": {"text": {"input": "cheap"}}}))
    with pytest.raises(PricingError, match="my-model"):
        Pricing.load(prices)


class UsageObserver:
    name = "usage-observer"

    def __init__(self) -> None:
        self.usages: list[tuple[str, str, dict[str, Any]]] = []
        self.ended: list[tuple[str, list[tuple[str, str]], dict[str, Any], dict[str, Any]]] = []

    @hookimpl
    def rt_usage(self, session_id: str, model: str, usage: dict[str, Any]) -> None:
        self.usages.append((session_id, model, usage))

    @hookimpl
    def rt_session_ended(
        self,
        session_id: str,
        transcript: list[Any],
        profile: dict[str, Any],
        usage: dict[str, Any],
    ) -> None:
        entries = [(entry.role, entry.text) for entry in transcript]
        self.ended.append((session_id, entries, profile, usage))


async def _two_turns(sim: SimControl, call_id: str) -> None:
    await sim.drive(call_id, "replies", text="Hello Ada!")
    await sim.drive(call_id, "replies", text="Noted.")
    await sim.drive(call_id, "user", text="Hi, I'm Ada.")
    await sim.drive(call_id, "user", text="I live in London.")


async def _responses_counted(client: httpx.AsyncClient, session_id: str, n: int) -> Any:
    usage = (await session_state(client, session_id))["usage"]
    return usage if usage["responses"] >= n else None


async def test_hook_rt_usage(start_server: StartServer, sim: SimControl) -> None:
    """Each response's usage is observed as the API reported it, with its cost; the session's
    `usage` is their sum."""
    observer = UsageObserver()
    url = await start_server(plugins=[observer])
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        call = await open_call(client, sim)
        await _two_turns(sim, call.call_id)
        usage = await wait_until(lambda: _responses_counted(client, call.session_id, 2))

    raw = [u for _, _, u in observer.usages]
    assert [(s, m) for s, m, _ in observer.usages] == [(call.session_id, "gpt-realtime")] * 2
    for one in raw:
        assert one["costUsd"] == pytest.approx(response_cost(one))
    assert usage["responses"] == 2
    assert usage["inputTokens"] == sum(u["input_tokens"] for u in raw)
    assert usage["outputTokens"] == sum(u["output_tokens"] for u in raw)
    assert usage["totalTokens"] == sum(u["total_tokens"] for u in raw)
    assert usage["outputTokenDetails"] == {
        "textTokens": sum(u["output_token_details"]["text_tokens"] for u in raw),
        "audioTokens": sum(u["output_token_details"]["audio_tokens"] for u in raw),
    }
    assert usage["costUsd"] == pytest.approx(sum(response_cost(u) for u in raw), abs=1e-6)


async def test_hook_rt_session_ended(start_server: StartServer, sim: SimControl) -> None:
    """A session that ends is observed once, with its transcript, profile and usage."""
    observer = UsageObserver()
    url = await start_server(plugins=[observer])
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        call = await open_call(client, sim, enableTranscription=True)
        await _two_turns(sim, call.call_id)
        usage = await wait_until(lambda: _responses_counted(client, call.session_id, 2))
        transcript = (await session_state(client, call.session_id))["transcript"]
        assert (await client.delete(f"/session/{call.session_id}")).status_code == 204
        await wait_until(lambda: _at_least(observer.ended, 1))

    [(session_id, entries, profile, ended_usage)] = observer.ended
    assert session_id == call.session_id
    assert entries == [(e["role"], e["text"]) for e in transcript]
    assert set(profile) >= {"first_name", "last_name", "income"}
    assert ended_usage["responses"] == usage["responses"] == 2
    assert ended_usage["transcription"]["items"] == 2  # the two user turns were transcribed


async def _at_least(items: list[Any], n: int) -> bool:
    return len(items) >= n


async def _call_ended(sim: SimControl, call_id: str) -> bool:
    return bool((await sim.call(call_id))["ended"])


async def test_max_call_seconds_hangs_up_a_live_call_after_a_farewell(
    start_server: StartServer, sim: SimControl
) -> None:
    url = await start_server(max_call_seconds=1, cap_farewell_instructions="Say goodbye now.")
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        call = await open_call(client, sim)
        await wait_until(lambda: _call_ended(sim, call.call_id), seconds=15)
        view = await session_state(client, call.session_id)

    creates = await sim.client_events(call.call_id, "response.create")
    assert [c["response"]["instructions"] for c in creates] == ["Say goodbye now."]
    assert view["sideband"]["endedBy"] == "max_call_seconds"
    assert view["sideband"]["state"] == "closed"
    hangups = await sim.requests(f"/v1/realtime/calls/{call.call_id}/hangup")
    assert len(hangups) == 1


async def test_max_session_cost_hangs_up_once_the_call_cost_that_much(
    start_server: StartServer, sim: SimControl
) -> None:
    url = await start_server(max_session_cost_usd=0.000001)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        call = await open_call(client, sim)
        await sim.drive(call.call_id, "user", text="Hi, I'm Ada.")
        await wait_until(lambda: _call_ended(sim, call.call_id), seconds=15)
        view = await session_state(client, call.session_id)

    assert view["sideband"]["endedBy"] == "max_session_cost_usd"
    assert view["usage"]["costUsd"] >= 0.000001
    assert await sim.client_events(call.call_id, "response.create") == []  # no farewell set


async def test_an_unpriced_transcription_model_leaves_the_call_s_cost_and_its_cap_standing(
    start_server: StartServer, sim: SimControl
) -> None:
    """The default transcription model has no price in the table: its own cost is null, and
    the call's responses are still priced (and capped)."""
    url = await start_server(max_session_cost_usd=0.000001)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        call = await open_call(client, sim, enableTranscription=True)
        await sim.drive(call.call_id, "user", text="Hi, I'm Ada.")
        await wait_until(lambda: _call_ended(sim, call.call_id), seconds=15)
        usage = (await session_state(client, call.session_id))["usage"]

    assert usage["transcription"]["items"] == 1
    assert usage["transcription"]["costUsd"] is None
    assert usage["costUsd"] > 0


def test_usage_noted_on_the_receive_path_is_counted_when_read_and_never_held_unbounded() -> None:
    seen: list[tuple[str, tuple[int, ...]]] = []
    counted = SessionUsage(pricing=Pricing.load(), counted=lambda m, c: seen.append((m, c)))
    one = {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}
    counted.note("gpt-realtime", one, response=True)
    counted.note("gpt-4o-mini-transcribe", {"type": "duration", "seconds": 2}, response=False)
    assert seen == []  # nothing counted yet: noting is all the receive path does

    view = counted.as_json()
    assert (view["responses"], view["totalTokens"]) == (1, 15)
    assert view["transcription"]["seconds"] == 2
    assert [model for model, _ in seen] == ["gpt-realtime"]

    for _ in range(MAX_UNCOUNTED):
        counted.note("gpt-realtime", one, response=True)
    # Counted once the bound was reached, unread: a batch's responses summed by model.
    total = COUNTS.index("total_tokens")
    assert [(model, counts[total]) for model, counts in seen] == [
        ("gpt-realtime", 15),
        ("gpt-realtime", 15 * MAX_UNCOUNTED),
    ]


def test_a_malformed_usage_counts_as_zero_and_never_raises() -> None:
    counted = SessionUsage(pricing=Pricing.load())
    for usage in (
        {"input_token_details": ["not", "an", "object"], "output_token_details": "x"},
        {"input_tokens": "ten", "total_tokens": -3, "input_token_details": {"text_tokens": 1.5}},
        {"input_token_details": {"cached_tokens": 5, "cached_tokens_details": 7}},
        "not even an object",
    ):
        counted.note("gpt-realtime", usage, response=True)
    counted.note("gpt-4o-mini-transcribe", {"input_token_details": [1]}, response=False)
    counted.add_extraction({"input_tokens": 3, "input_tokens_details": "?"}, None)

    view = counted.as_json()
    assert view["responses"] == 3  # the one that is not an object is no response's usage
    assert (view["inputTokens"], view["totalTokens"]) == (0, 0)
    assert view["inputTokenDetails"]["cachedTokens"] == 5
    assert view["transcription"]["items"] == 1
    assert view["extraction"]["inputTokens"] == 3
