"""What a session's call used and cost: summed from each `response.done`'s usage, the input
transcriptions' usage, and the extraction calls' (Responses API) usage, reported apart.

Cached input tokens are part of the input counts the API reports (`input_token_details` counts
include them); cost prices the cached part at the cached rate and only the rest at the full
rate, so nothing is paid twice.

Usage arrives on the sideband's receive path, once per response and per transcription, so it
is only noted there (`note`); it is counted when something reads it (a view, a snapshot, a
cost), when the session manager folds it for the metrics (once a second, and before a scrape),
or every `MAX_UNCOUNTED` notes. Counts are summed by realtime model and priced when a cost is
asked for: a cost is linear in the counts, so pricing the sums prices every response.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from operator import add
from typing import Any

from ._pricing import PER_TOKENS, ModelPrice, Pricing

# The kinds of tokens counted (the `kind` of the usage metric).
INPUT_KINDS = ("input_text", "input_audio", "input_image", "input_cached")
OUTPUT_KINDS = ("output_text", "output_audio")


# A response's counts (`response_counts`), in this order; the first six are `TOKEN_KINDS`.
TOKEN_KINDS = INPUT_KINDS + OUTPUT_KINDS
COUNTS = (
    *TOKEN_KINDS,
    "cached_text",  # the cached part of each input modality (within `input_cached`)
    "cached_audio",
    "cached_image",
    "input_tokens",
    "output_tokens",
    "total_tokens",
)
NO_COUNTS = (0,) * len(COUNTS)
_EMPTY: dict[str, Any] = {}


def _int(value: object) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def _dict(value: object) -> dict[str, Any]:
    """A part of a usage that should be an object: anything else reads as empty, so a
    malformed usage counts as 0 and never raises where it is counted (a view, the metrics)."""
    return value if isinstance(value, dict) else _EMPTY


def response_counts(usage: object) -> tuple[int, ...] | None:
    """`response.done`'s `response.usage` as counts (`COUNTS`), read defensively: a missing
    part counts 0. A cached part without a breakdown by modality counts as text (the cheapest
    reading), and no modality's cached part exceeds its input."""
    if not isinstance(usage, dict):
        return None
    details = _dict(usage.get("input_token_details"))
    out = _dict(usage.get("output_token_details"))
    breakdown = _dict(details.get("cached_tokens_details"))
    counts: tuple[int, ...] = (
        details.get("text_tokens") or 0,
        details.get("audio_tokens") or 0,
        details.get("image_tokens") or 0,
        details.get("cached_tokens") or 0,
        out.get("text_tokens") or 0,
        out.get("audio_tokens") or 0,
        breakdown.get("text_tokens") or 0,
        breakdown.get("audio_tokens") or 0,
        breakdown.get("image_tokens") or 0,
        usage.get("input_tokens") or 0,
        usage.get("output_tokens") or 0,
        usage.get("total_tokens") or 0,
    )
    try:  # the usual case, as the API sends it: every count a non-negative int
        usual = sum(counts).__class__ is int and min(counts) >= 0
    except TypeError:
        usual = False
    if not usual:
        counts = tuple(_int(count) for count in counts)
    text, audio, image, cached = counts[:4]
    cached_text, cached_audio, cached_image = counts[6:9]
    if not (cached_text or cached_audio or cached_image):
        if cached:
            counts = (*counts[:6], min(cached, text), 0, 0, *counts[9:])
    elif cached_text > text or cached_audio > audio or cached_image > image:
        parts = (min(cached_text, text), min(cached_audio, audio), min(cached_image, image))
        counts = (*counts[:6], *parts, *counts[9:])
    return counts


def add_counts(
    by_model: dict[str, list[int]], model: str, counts: tuple[int, ...] | list[int]
) -> None:
    """Add *counts* (`COUNTS`) to *model*'s sums in *by_model*."""
    sums = by_model.get(model)
    by_model[model] = list(counts if sums is None else map(add, sums, counts))


def counts_cost(counts: tuple[int, ...] | list[int], price: ModelPrice) -> float:
    """USD for *counts* (`COUNTS`; one response's, or a sum of them)."""
    text_in, text_cached, audio_in, audio_cached, image_in, image_cached, text_out, audio_out = (
        price.flat
    )
    text, audio, image, _, output_text, output_audio, cached_text, cached_audio, cached_image = (
        counts[:9]
    )
    cost = (
        (text - cached_text) * text_in
        + cached_text * text_cached
        + (audio - cached_audio) * audio_in
        + cached_audio * audio_cached
        + (image - cached_image) * image_in
        + cached_image * image_cached
        + output_text * text_out
        + output_audio * audio_out
    )
    return cost / PER_TOKENS


@dataclass
class _Tally:
    """Tokens of one source (the call's responses, transcriptions, or extractions)."""

    count: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cost_usd: float | None = 0.0  # None once a part had no known price

    def add(self, input_tokens: int, output_tokens: int, total: int, cost: float | None) -> None:
        self.count += 1
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        self.total_tokens += total
        self.cost_usd = None if cost is None or self.cost_usd is None else self.cost_usd + cost


# Usages noted before they are counted anyway (a bound on what a session holds uncounted).
MAX_UNCOUNTED = 64

Counted = Callable[[str, tuple[int, ...]], None]


@dataclass
class SessionUsage:
    """A session's usage so far; `as_json` is `GET /session/{id}`'s `usage`.

    The session sets *pricing*, which prices the responses' sums when a cost is asked for,
    and *counted*, told each response's counts as they are counted (the metrics).
    """

    responses: int = 0
    # The responses' counts (`COUNTS`) summed, by realtime model.
    response_counts: dict[str, list[int]] = field(default_factory=dict)
    transcription: _Tally = field(default_factory=_Tally)
    transcription_seconds: float = 0.0
    extraction: _Tally = field(default_factory=_Tally)
    pricing: Pricing = field(default_factory=lambda: Pricing({}), repr=False, compare=False)
    counted: Counted | None = field(default=None, repr=False, compare=False)
    # Noted, not counted yet: (whether a response's, the model, its `usage`), oldest first.
    _uncounted: list[tuple[bool, str, object]] = field(
        default_factory=list, init=False, repr=False, compare=False
    )

    def note(self, model: str, usage: object, *, response: bool) -> None:
        """A `response.done`'s usage (*response*) or a transcription's, by *model*: kept to be
        counted at the next read or `count` (this runs on the receive path)."""
        uncounted = self._uncounted
        uncounted.append((response, model, usage))
        if len(uncounted) >= MAX_UNCOUNTED:
            self.count()

    def count(self) -> None:
        """Count what was noted: the responses' counts summed by model first, so the sums and
        `counted` take each model's once."""
        if not self._uncounted:
            return
        uncounted, self._uncounted = self._uncounted, []
        summed: dict[str, list[int]] = {}
        for response, model, usage in uncounted:
            if not response:
                self.add_transcription(usage, self.pricing.price(model))
            elif (counts := response_counts(usage)) is not None:
                self.responses += 1
                add_counts(summed, model, counts)
        for model, sums in summed.items():
            add_counts(self.response_counts, model, sums)
            if self.counted is not None:
                self.counted(model, tuple(sums))

    def count_response(self, model: str, usage: object) -> tuple[int, ...] | None:
        """Count a `response.done`'s usage now; its counts (None: no usage)."""
        counts = response_counts(usage)
        if counts is not None:
            self.add_response(model, counts)
            if self.counted is not None:
                self.counted(model, counts)
        return counts

    def snapshot(self) -> dict[str, Any]:
        """Everything counted, JSON-ready (a shared store keeps it with the record)."""
        self.count()
        return {
            "responses": self.responses,
            "response_counts": self.response_counts,
            "transcription": asdict(self.transcription),
            "transcription_seconds": self.transcription_seconds,
            "extraction": asdict(self.extraction),
        }

    @classmethod
    def restore(cls, data: object) -> SessionUsage:
        """What `snapshot` wrote; a record without usage (an older one) starts at zero."""
        if not isinstance(data, dict):
            return cls()
        try:
            sums = data["response_counts"]
            return cls(
                responses=int(data["responses"]),
                response_counts={
                    str(model): [int(c) for c in counts] for model, counts in sums.items()
                },
                transcription=_Tally(**data["transcription"]),
                transcription_seconds=float(data["transcription_seconds"]),
                extraction=_Tally(**data["extraction"]),
            )
        except (AttributeError, KeyError, TypeError, ValueError):
            return cls()

    def add_response(self, model: str, counts: tuple[int, ...]) -> None:
        """One response's counts (`response_counts`), by the realtime *model* that made it."""
        self.responses += 1
        add_counts(self.response_counts, model, counts)

    def _summed(self) -> list[int]:
        summed = list(NO_COUNTS)
        for counts in self.response_counts.values():
            summed = list(map(add, summed, counts))
        return summed

    def _responses_cost(self) -> float | None:
        """The responses' cost; None if one of their models has no known price."""
        cost = 0.0
        for model, counts in self.response_counts.items():
            price = self.pricing.price(model)
            if price is None:
                return None
            cost += counts_cost(counts, price)
        return cost

    def add_transcription(self, usage: object, price: ModelPrice | None) -> None:
        """A `...input_audio_transcription.completed`'s `usage`: tokens, or a duration."""
        if not isinstance(usage, dict):
            return
        if usage.get("type") == "duration":
            seconds = usage.get("seconds")
            if isinstance(seconds, int | float) and seconds > 0:
                self.transcription_seconds += float(seconds)
            self.transcription.add(0, 0, 0, None)  # priced by the minute: not in the table
            return
        details = _dict(usage.get("input_token_details"))
        cost = None
        if price is not None:
            text_in, _, audio_in, _, _, _, text_out, _ = price.flat
            cost = (
                _int(details.get("text_tokens")) * text_in
                + _int(details.get("audio_tokens")) * audio_in
                + _int(usage.get("output_tokens")) * text_out
            ) / PER_TOKENS
        self.transcription.add(
            _int(usage.get("input_tokens")),
            _int(usage.get("output_tokens")),
            _int(usage.get("total_tokens")),
            cost,
        )

    def add_extraction(self, usage: object, price: ModelPrice | None) -> None:
        """A Responses API answer's `usage` (`input_tokens`, `output_tokens`, cached in
        `input_tokens_details.cached_tokens`)."""
        if not isinstance(usage, dict):
            return
        input_tokens, output_tokens = (
            _int(usage.get("input_tokens")),
            _int(usage.get("output_tokens")),
        )
        cached = min(
            _int(_dict(usage.get("input_tokens_details")).get("cached_tokens")), input_tokens
        )
        cost = None
        if price is not None:
            text = price.of("text")
            cost = (
                (input_tokens - cached) * text.input
                + cached * text.cached_input
                + output_tokens * text.output
            ) / PER_TOKENS
        total = _int(usage.get("total_tokens")) or input_tokens + output_tokens
        self.extraction.add(input_tokens, output_tokens, total, cost)

    @property
    def cost_usd(self) -> float | None:
        """The call's cost: its responses (None when the realtime model has no known price),
        and its transcriptions when their model's price is known (else they show their own
        `costUsd` as null, and are not in this sum)."""
        self.count()
        cost = self._responses_cost()
        if cost is None:
            return None
        if self.transcription.count and self.transcription.cost_usd is not None:
            cost += self.transcription.cost_usd
        return round(cost, 6)

    def as_json(self) -> dict[str, Any]:
        self.count()
        t = dict(zip(COUNTS, self._summed(), strict=True))
        return {
            "responses": self.responses,
            "inputTokens": t["input_tokens"],
            "outputTokens": t["output_tokens"],
            "totalTokens": t["total_tokens"],
            "inputTokenDetails": {
                "textTokens": t["input_text"],
                "audioTokens": t["input_audio"],
                "imageTokens": t["input_image"],
                "cachedTokens": t["input_cached"],
            },
            "outputTokenDetails": {
                "textTokens": t["output_text"],
                "audioTokens": t["output_audio"],
            },
            "transcription": {
                "items": self.transcription.count,
                "inputTokens": self.transcription.input_tokens,
                "outputTokens": self.transcription.output_tokens,
                "totalTokens": self.transcription.total_tokens,
                "seconds": round(self.transcription_seconds, 3),
                "costUsd": _rounded(self.transcription.cost_usd)
                if self.transcription.count
                else 0.0,
            },
            "extraction": {
                "requests": self.extraction.count,
                "inputTokens": self.extraction.input_tokens,
                "outputTokens": self.extraction.output_tokens,
                "totalTokens": self.extraction.total_tokens,
                "costUsd": _rounded(self.extraction.cost_usd),
            },
            "costUsd": self.cost_usd,
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


__all__ = ["Pricing", "SessionUsage", "counts_cost", "response_counts"]
