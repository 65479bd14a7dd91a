"""Extraction's pure parts: the strict schema, parsing raw answers, merging, single flight."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
from pydantic import BaseModel

from realtime_trio._extraction import (
    CoolingDown,
    Extracted,
    ExtractionFailed,
    ExtractionScope,
    Failed,
    parse_profile,
    request_body,
)
from realtime_trio._profile import Profile, merge_profiles, strict_json_schema


class Onboarding(BaseModel):
    city: str | None = None
    interests: list[str] = []


def answer(*parts: dict[str, Any], status: str = "completed", **extra: Any) -> dict[str, Any]:
    return {
        "status": status,
        "output": [
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "message", "role": "assistant", "content": list(parts)},
        ],
        **extra,
    }


def text(value: Any) -> dict[str, Any]:
    return {
        "type": "output_text",
        "annotations": [],
        "text": value if isinstance(value, str) else json.dumps(value),
    }


def test_the_default_profile_schema_is_strict_mode_compatible() -> None:
    assert strict_json_schema(Profile) == {
        "type": "object",
        "description": "What the user has said about themselves; null where unknown.",
        "properties": {
            "first_name": {
                "anyOf": [{"type": "string"}, {"type": "null"}],
                "description": "The user's first name.",
            },
            "last_name": {
                "anyOf": [{"type": "string"}, {"type": "null"}],
                "description": "The user's last name.",
            },
            "income": {
                "anyOf": [{"type": "number"}, {"type": "null"}],
                "description": "The user's monthly income.",
            },
        },
        "required": ["first_name", "last_name", "income"],
        "additionalProperties": False,
    }


def test_a_request_carries_the_schema_the_transcript_and_the_previous_profile() -> None:
    body = request_body(
        model="gpt-4.1-mini",
        profile_model=Profile,
        transcript_lines=["USER: I'm Ada.", "ASSISTANT: Hi Ada."],
        previous={"first_name": None, "last_name": "L", "income": None},
    )

    assert body["model"] == "gpt-4.1-mini"
    assert body["store"] is False
    assert body["text"]["format"]["type"] == "json_schema"
    assert body["text"]["format"]["strict"] is True
    assert body["text"]["format"]["schema"] == strict_json_schema(Profile)
    system, user = body["input"]
    assert system["role"] == "system"
    assert (
        'Previous profile: {"first_name": null, "last_name": "L", "income": null}'
        in system["content"]
    )
    assert user == {"role": "user", "content": "Transcript:\nUSER: I'm Ada.\nASSISTANT: Hi Ada."}


def test_parses_the_message_text_skipping_other_items() -> None:
    raw = answer(text({"first_name": "Ada", "last_name": None, "income": 4500}))

    assert parse_profile(raw, Profile) == {"first_name": "Ada", "last_name": None, "income": 4500.0}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (answer({"type": "refusal", "refusal": "I can't."}), "Extraction refused: I can't."),
        (
            answer(
                text('{"first_name": "A'),
                status="incomplete",
                incomplete_details={"reason": "max_output_tokens"},
            ),
            "Extraction incomplete: max_output_tokens",
        ),
        (
            answer(status="failed", error={"code": "server_error", "message": "Boom."}),
            "Extraction failed: Boom.",
        ),
        (answer(text("not json")), "Extraction returned text that is not JSON"),
        (
            answer(text({"first_name": 5, "last_name": None, "income": None})),
            "Extraction does not fit the profile: first_name",
        ),
        (answer(), "Extraction returned no text"),
    ],
)
def test_unusable_answers_are_clear_errors(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ExtractionFailed) as raised:
        parse_profile(raw, Profile)

    assert raised.value.message.startswith(message)


def test_merging_keeps_what_is_known_and_takes_what_is_new() -> None:
    old = {"first_name": "Ada", "last_name": None, "income": 3000.0, "interests": ["chess"]}
    new = {
        "first_name": None,
        "last_name": "Lovelace",
        "income": 4500.0,
        "interests": ["chess", "math"],
    }

    assert merge_profiles(old, new) == {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "income": 4500.0,
        "interests": ["chess", "math"],
    }


def test_other_profile_models_get_strict_schemas_too() -> None:
    schema = strict_json_schema(Onboarding)

    assert schema["required"] == ["city", "interests"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["interests"] == {"type": "array", "items": {"type": "string"}}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_callers_during_an_extraction_share_its_result(nursery: trio.Nursery) -> None:
    runs: list[int] = []
    release = trio.Event()

    async def run() -> dict[str, Any]:
        runs.append(1)
        await release.wait()
        return {"first_name": "Ada"}

    scope = ExtractionScope(run, cooldown_seconds=60, current_profile=dict)
    outcomes: list[Any] = []

    async def ask() -> None:
        outcomes.append(await scope.request(nursery, throttled=False))

    async with trio.open_nursery() as callers:
        for _ in range(3):
            callers.start_soon(ask)
        await trio.testing.wait_all_tasks_blocked()
        assert scope.running
        release.set()

    assert runs == [1]
    assert outcomes == [Extracted({"first_name": "Ada"})] * 3


async def test_the_cooldown_throttles_tool_calls_but_not_explicit_requests(
    nursery: trio.Nursery,
) -> None:
    clock = Clock()
    runs: list[float] = []

    async def run() -> dict[str, Any]:
        runs.append(clock.now)
        return {"n": len(runs)}

    scope = ExtractionScope(
        run, cooldown_seconds=60, current_profile=lambda: {"n": len(runs)}, clock=clock
    )

    assert await scope.request(nursery, throttled=True) == Extracted({"n": 1})
    clock.now += 20
    assert await scope.request(nursery, throttled=True) == CoolingDown(
        retry_after_seconds=40, profile={"n": 1}
    )
    assert await scope.request(nursery, throttled=False) == Extracted({"n": 2})
    clock.now += 59.5
    assert await scope.request(nursery, throttled=True) == CoolingDown(
        retry_after_seconds=1, profile={"n": 2}
    )
    clock.now += 1
    assert await scope.request(nursery, throttled=True) == Extracted({"n": 3})
    assert runs == [100.0, 120.0, 180.5]


async def test_a_failed_extraction_does_not_start_the_cooldown(nursery: trio.Nursery) -> None:
    attempts: list[int] = []

    async def run() -> dict[str, Any]:
        attempts.append(1)
        if len(attempts) == 1:
            raise ExtractionFailed("Extraction refused: no")
        return {"ok": True}

    scope = ExtractionScope(run, cooldown_seconds=60, current_profile=dict)

    first = await scope.request(nursery, throttled=True)
    second = await scope.request(nursery, throttled=True)

    assert isinstance(first, Failed)
    assert first.error.message == "Extraction refused: no"
    assert second == Extracted({"ok": True})
