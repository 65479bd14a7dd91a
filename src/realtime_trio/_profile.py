"""The user profile the server keeps for each session.

The default is the original server's, which apps in the field display on their profile card.
It is one model in one place, so extraction, the schema sent upstream and the API all follow it.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Profile(BaseModel):
    """What the user has said about themselves; null where unknown."""

    model_config = ConfigDict(extra="forbid")

    first_name: str | None = Field(default=None, description="The user's first name.")
    last_name: str | None = Field(default=None, description="The user's last name.")
    income: float | None = Field(default=None, description="The user's monthly income.")


def empty_profile(model: type[BaseModel] = Profile) -> dict[str, Any]:
    return model().model_dump()


def strict_json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """*model*'s JSON schema in the form OpenAI's strict structured outputs accept.

    Every property required (optional ones are nullable instead), `additionalProperties: false`
    on every object, and no `default` or `title` keywords.
    """
    return copy.deepcopy(cached_strict_json_schema(model))


@functools.cache
def cached_strict_json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`strict_json_schema`, built once per model (every extraction sends it): do not mutate."""
    schema = copy.deepcopy(model.model_json_schema())
    _make_strict(schema)
    for definition in schema.get("$defs", {}).values():
        _make_strict(definition)
    return schema


def _make_strict(node: Any) -> None:
    if isinstance(node, list):
        for item in node:
            _make_strict(item)
        return
    if not isinstance(node, dict):
        return
    node.pop("default", None)
    node.pop("title", None)
    if node.get("type") == "object" and "properties" in node:
        node["required"] = list(node["properties"])
        node["additionalProperties"] = False
    for key, value in node.items():
        if key == "$defs":
            continue
        if key == "properties":
            for child in value.values():
                _make_strict(child)
        else:
            _make_strict(value)


def merge_profiles(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """*old* updated by *new*: a new non-null value replaces the old one; lists are merged
    without duplicates, nested objects field by field."""
    merged = dict(old)
    for key, value in new.items():
        current = merged.get(key)
        if value is None or value in ("", [], {}):
            merged.setdefault(key, value)
        elif isinstance(value, list) and isinstance(current, list):
            merged[key] = current + [item for item in value if item not in current]
        elif isinstance(value, dict) and isinstance(current, dict):
            merged[key] = merge_profiles(current, value)
        else:
            merged[key] = value
    return merged
