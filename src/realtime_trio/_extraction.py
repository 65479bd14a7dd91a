"""Profile extraction: the Responses API over the transcript, and each session's throttled scope.

`extract_profile` makes one structured-output request and parses the raw answer itself (no SDK
convenience). `ExtractionScope` is a session's single-flight, cooldown-throttled runner: the
extraction runs as a task in the session's nursery (so it dies with the session) and every
caller that arrives meanwhile shares its result.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import trio
from pydantic import BaseModel, ValidationError

from ._errors import RealtimeTrioError, UpstreamError
from ._fresh_tasks import start_soon_fresh
from ._profile import cached_strict_json_schema, merge_profiles
from ._upstream import OpenAIClient

logger = logging.getLogger("realtime_trio.extraction")

SCHEMA_NAME = "user_profile"

SYSTEM_PROMPT = (
    "You extract facts the USER has stated about themselves from a voice conversation "
    "transcript. Fill every field of the schema; use null for anything the user has not said "
    "(never guess, never use what the assistant said). Amounts of money are numbers; income is "
    "per month. If the user corrected themselves, use the latest statement. The previous "
    "profile is given: keep its values unless the transcript says otherwise.\n\n"
    "Previous profile: {previous}"
)


class ExtractionFailed(RealtimeTrioError):
    """Upstream answered, but not with a usable profile (refusal, incomplete, bad JSON...)."""

    status = 502
    code = "extraction_failed"


class NoTranscript(RealtimeTrioError):
    status = 400
    code = "no_transcript"

    def __init__(self) -> None:
        super().__init__("No transcript available for extraction")


def request_body(
    *,
    model: str,
    profile_model: type[BaseModel],
    transcript_lines: list[str],
    previous: dict[str, Any],
) -> dict[str, Any]:
    """The `POST /responses` body for one extraction."""
    return {
        "model": model,
        "input": [
            {"role": "system", "content": SYSTEM_PROMPT.format(previous=json.dumps(previous))},
            {"role": "user", "content": "Transcript:\n" + "\n".join(transcript_lines)},
        ],
        "text": {
            "format": {
                "type": "json_schema",
                "name": SCHEMA_NAME,
                "schema": cached_strict_json_schema(profile_model),
                "strict": True,
            }
        },
        "store": False,
    }


def parse_profile(response: dict[str, Any], profile_model: type[BaseModel]) -> dict[str, Any]:
    """The profile in a raw Responses answer, validated against *profile_model*.

    Raises:
        ExtractionFailed: not completed, refused, no text, not JSON, or not the schema.
    """
    status = response.get("status")
    if status != "completed":
        details = response.get("incomplete_details") or response.get("error") or {}
        reason = (
            details.get("reason") or details.get("message") if isinstance(details, dict) else None
        )
        raise ExtractionFailed(
            f"Extraction {status or 'failed'}" + (f": {reason}" if reason else "")
        )
    texts = []
    for item in response.get("output") or []:
        if not isinstance(item, dict) or item.get("type") != "message":
            continue  # reasoning and tool items come first with some models
        for part in item.get("content") or []:
            if isinstance(part, dict) and part.get("type") == "refusal":
                raise ExtractionFailed(f"Extraction refused: {part.get('refusal') or ''}".strip())
            if isinstance(part, dict) and part.get("type") == "output_text":
                texts.append(str(part.get("text") or ""))
    text = "".join(texts)
    if not text:
        raise ExtractionFailed("Extraction returned no text")
    try:
        return profile_model.model_validate_json(text).model_dump()
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            raise ExtractionFailed("Extraction returned text that is not JSON") from None
        where = ".".join(str(part) for part in first["loc"]) or "profile"
        raise ExtractionFailed(
            f"Extraction does not fit the profile: {where}: {first['msg']}"
        ) from None


async def extract_profile(
    upstream: OpenAIClient,
    *,
    model: str,
    profile_model: type[BaseModel],
    transcript_lines: list[str],
    previous: dict[str, Any],
    on_usage: Callable[[object], None] | None = None,
) -> dict[str, Any]:
    """Run one extraction and return the profile merged over *previous*; *on_usage* is told
    the Responses API's `usage` of the answer.

    Raises:
        NoTranscript: nothing to extract from (upstream is not called).
        UpstreamError, ExtractionFailed: the profile could not be had; *previous* is untouched.
    """
    if not transcript_lines:
        raise NoTranscript()
    body = request_body(
        model=model,
        profile_model=profile_model,
        transcript_lines=transcript_lines,
        previous=previous,
    )
    response = await upstream.post_json("/responses", body)
    if on_usage is not None and isinstance(response, dict):
        on_usage(response.get("usage"))
    return merge_profiles(previous, parse_profile(response, profile_model))


# -- a session's extraction scope ------------------------------------------------------


@dataclass(frozen=True)
class Extracted:
    profile: dict[str, Any]


@dataclass(frozen=True)
class CoolingDown:
    retry_after_seconds: int
    profile: dict[str, Any]


@dataclass(frozen=True)
class Failed:
    error: RealtimeTrioError


Outcome = Extracted | CoolingDown | Failed


class ExtractionScope:
    """One session's extractions: one at a time, throttled by a cooldown.

    Args:
        run: performs one extraction and stores its result (raises on failure).
        cooldown_seconds: minimum time between two successful extractions of tool calls.
        clock: monotonic seconds, injectable.
    """

    def __init__(
        self,
        run: Callable[[], Awaitable[dict[str, Any]]],
        *,
        cooldown_seconds: float,
        current_profile: Callable[[], dict[str, Any]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._run = run
        self._cooldown = cooldown_seconds
        self._current_profile = current_profile
        self._clock = clock
        self._last_success: float | None = None
        self._flight: _Flight | None = None

    @property
    def running(self) -> bool:
        return self._flight is not None

    async def request(self, nursery: trio.Nursery, *, throttled: bool) -> Outcome:
        """Extract now, join the extraction in flight, or (if *throttled*) report the cooldown.

        The extraction itself runs in *nursery* (the session's), so leaving early (a client
        that disconnects) does not cancel it for the others waiting.
        """
        flight = self._flight
        if flight is None:
            if throttled and (left := self._cooldown_left()) > 0:
                return CoolingDown(retry_after_seconds=left, profile=self._current_profile())
            flight = self._flight = _Flight()
            start_soon_fresh(nursery, self._fly, flight)
        await flight.done.wait()
        return flight.outcome or Failed(ExtractionFailed("Extraction ended without a result"))

    def _cooldown_left(self) -> int:
        if self._last_success is None:
            return 0
        left = self._last_success + self._cooldown - self._clock()
        return max(0, int(left + 0.999))

    async def _fly(self, flight: _Flight) -> None:
        try:
            profile = await self._run()
            self._last_success = self._clock()
            flight.outcome = Extracted(profile)
        except (UpstreamError, ExtractionFailed, NoTranscript) as exc:
            logger.warning("extraction failed: %s", exc.message)
            flight.outcome = Failed(exc)
        except Exception as exc:
            logger.exception("extraction failed unexpectedly")
            flight.outcome = Failed(ExtractionFailed(f"Extraction failed: {type(exc).__name__}"))
        finally:
            if flight.outcome is None:  # cancelled with the session
                flight.outcome = Failed(ExtractionFailed("Extraction cancelled: the session ended"))
            self._flight = None
            flight.done.set()


class _Flight:
    def __init__(self) -> None:
        self.done = trio.Event()
        self.outcome: Outcome | None = None
