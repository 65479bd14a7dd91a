"""What a session's call used and cost: summed from each `response.done`'s usage, the input
transcriptions' usage, and the extraction calls' (Responses API) usage, reported apart.

Cached input tokens are part of the input counts the API reports (`input_token_details` counts
include them); cost prices the cached part at the cached rate and only the rest at the full
rate, so nothing is paid twice.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ._pricing import PER_TOKENS, ModelPrice, Pricing

# The kinds of tokens counted (the `kind` of the usage metric).
INPUT_KINDS = ("input_text", "input_audio", "input_image", "input_cached")
OUTPUT_KINDS = ("output_text", "output_audio")


def _int(value: object) -> int:
    return value if isinstance(value, int) and value > 0 else 0


@dataclass
class ResponseUsage:
    """One response's tokens by kind, and what they cost (None: the model has no price)."""

    tokens: dict[str, int]
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: float | None


def read_response_usage(usage: object, price: ModelPrice | None) -> ResponseUsage | None:
    """`response.done`'s `response.usage`, read defensively (a missing part counts 0).

    Runs once per response on the receive path: plain lookups, no allocation it can avoid.
    """
    if not isinstance(usage, dict):
        return None
    details = usage.get("input_token_details") or {}
    out = usage.get("output_token_details") or {}
    tokens = {
        "input_text": _int(details.get("text_tokens")),
        "input_audio": _int(details.get("audio_tokens")),
        "input_image": _int(details.get("image_tokens")),
        "input_cached": _int(details.get("cached_tokens")),
        "output_text": _int(out.get("text_tokens")),
        "output_audio": _int(out.get("audio_tokens")),
    }
    return ResponseUsage(
        tokens=tokens,
        input_tokens=_int(usage.get("input_tokens")),
        output_tokens=_int(usage.get("output_tokens")),
        total_tokens=_int(usage.get("total_tokens")),
        cost_usd=None if price is None else _cost(tokens, details, price),
    )


def _cost(tokens: dict[str, int], details: dict[str, Any], price: ModelPrice) -> float:
    """USD for *tokens*: the cached part of each input modality at its cached rate (with no
    breakdown by modality, all of it counts as text: the cheapest reading)."""
    text_in, text_cached, audio_in, audio_cached, image_in, image_cached, text_out, audio_out = (
        price.flat
    )
    breakdown = details.get("cached_tokens_details") or {}
    cached_text = _int(breakdown.get("text_tokens"))
    cached_audio = _int(breakdown.get("audio_tokens"))
    cached_image = _int(breakdown.get("image_tokens"))
    if not (cached_text or cached_audio or cached_image):
        cached_text = tokens["input_cached"]
    text, audio, image = tokens["input_text"], tokens["input_audio"], tokens["input_image"]
    cached_text, cached_audio = min(cached_text, text), min(cached_audio, audio)
    cached_image = min(cached_image, image)
    cost = (
        (text - cached_text) * text_in
        + cached_text * text_cached
        + (audio - cached_audio) * audio_in
        + cached_audio * audio_cached
        + (image - cached_image) * image_in
        + cached_image * image_cached
        + tokens["output_text"] * text_out
        + tokens["output_audio"] * audio_out
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


@dataclass
class SessionUsage:
    """A session's usage so far; `as_json` is `GET /session/{id}`'s `usage`."""

    responses: _Tally = field(default_factory=_Tally)
    tokens: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(INPUT_KINDS + OUTPUT_KINDS, 0)
    )
    transcription: _Tally = field(default_factory=_Tally)
    transcription_seconds: float = 0.0
    extraction: _Tally = field(default_factory=_Tally)

    def snapshot(self) -> dict[str, Any]:
        """Everything counted, JSON-ready (a shared store keeps it with the record)."""
        return asdict(self)

    @classmethod
    def restore(cls, data: object) -> SessionUsage:
        """What `snapshot` wrote; a record without usage (an older one) starts at zero."""
        if not isinstance(data, dict):
            return cls()
        try:
            return cls(
                responses=_Tally(**data["responses"]),
                tokens={**dict.fromkeys(INPUT_KINDS + OUTPUT_KINDS, 0), **data["tokens"]},
                transcription=_Tally(**data["transcription"]),
                transcription_seconds=float(data["transcription_seconds"]),
                extraction=_Tally(**data["extraction"]),
            )
        except (KeyError, TypeError, ValueError):
            return cls()

    def add_response(self, usage: ResponseUsage) -> None:
        self.responses.add(
            usage.input_tokens, usage.output_tokens, usage.total_tokens, usage.cost_usd
        )
        for kind, count in usage.tokens.items():
            self.tokens[kind] += count

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
        details = usage.get("input_token_details") or {}
        cost = None
        if price is not None:
            cost = (
                _int(details.get("text_tokens")) * price.of("text").input
                + _int(details.get("audio_tokens")) * price.of("audio").input
                + _int(usage.get("output_tokens")) * price.of("text").output
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
            _int((usage.get("input_tokens_details") or {}).get("cached_tokens")), input_tokens
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
        cost = self.responses.cost_usd
        if cost is None:
            return None
        if self.transcription.count and self.transcription.cost_usd is not None:
            cost += self.transcription.cost_usd
        return round(cost, 6)

    def as_json(self) -> dict[str, Any]:
        t = self.tokens
        return {
            "responses": self.responses.count,
            "inputTokens": self.responses.input_tokens,
            "outputTokens": self.responses.output_tokens,
            "totalTokens": self.responses.total_tokens,
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


__all__ = ["Pricing", "ResponseUsage", "SessionUsage", "read_response_usage"]
