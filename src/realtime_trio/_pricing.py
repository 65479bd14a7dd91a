"""What tokens cost: a small table of USD per million tokens per model and modality.

The package ships the prices of OpenAI's realtime models (`pricing.json`); `PRICING_FILE`, a
JSON file of the same shape, overrides or adds models. A model with no price gets no cost
(`None`), never a guess.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

MODALITIES = ("text", "audio", "image")
PER_TOKENS = 1_000_000


class PricingError(ValueError):
    """A pricing file that cannot be used; the message names the file and the entry."""


@dataclass(frozen=True)
class Rates:
    """USD per million tokens of one modality."""

    input: float = 0.0
    cached_input: float = 0.0
    output: float = 0.0


@dataclass(frozen=True)
class ModelPrice:
    rates: dict[str, Rates]

    def of(self, modality: str) -> Rates:
        return self.rates.get(modality, Rates())

    @cached_property
    def flat(self) -> tuple[float, ...]:
        """Input and cached input of text, audio and image, then output of text and audio:
        what pricing one response reads, in one tuple (it runs once per response)."""
        text, audio, image = self.of("text"), self.of("audio"), self.of("image")
        return (
            text.input,
            text.cached_input,
            audio.input,
            audio.cached_input,
            image.input,
            image.cached_input,
            text.output,
            audio.output,
        )


class Pricing:
    """Prices by model; `price(model)` is None for a model with no known price."""

    def __init__(self, models: dict[str, ModelPrice]) -> None:
        self._models = models

    def price(self, model: str) -> ModelPrice | None:
        return self._models.get(model)

    @classmethod
    def load(cls, override: Path | None = None) -> Pricing:
        """The package's table, with *override*'s models over it.

        Raises:
            PricingError: *override* cannot be read, or an entry is malformed.
        """
        shipped = json.loads(resources.files(__package__).joinpath("pricing.json").read_text())
        models = _parse(shipped, "pricing.json")
        if override is not None:
            try:
                extra = json.loads(override.read_text())
            except (OSError, ValueError) as exc:
                raise PricingError(f"PRICING_FILE {override}: {exc}") from None
            models.update(_parse(extra, f"PRICING_FILE {override}"))
        return cls(models)


def _parse(document: Any, source: str) -> dict[str, ModelPrice]:
    if not isinstance(document, dict):
        raise PricingError(f"{source}: must be a JSON object of models")
    models = {}
    for model, entry in document.items():
        if model.startswith("_"):
            continue  # comments
        if not isinstance(entry, dict):
            raise PricingError(f"{source}: {model!r} must be an object of modalities")
        rates = {}
        for modality, values in entry.items():
            if modality not in MODALITIES or not isinstance(values, dict):
                raise PricingError(f"{source}: {model!r} has an unknown modality {modality!r}")
            prices = {key: values.get(key, 0) for key in ("input", "output")}
            prices["cachedInput"] = values.get("cachedInput", prices["input"])
            if not all(isinstance(v, int | float) and v >= 0 for v in prices.values()):
                raise PricingError(f"{source}: {model!r} {modality} prices must be numbers >= 0")
            rates[modality] = Rates(
                input=float(prices["input"]),
                cached_input=float(prices["cachedInput"]),
                output=float(prices["output"]),
            )
        models[model] = ModelPrice(rates)
    return models
