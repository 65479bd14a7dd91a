"""The user profile the server keeps for each session.

The default is the original server's, which apps in the field display on their profile card.
It is one model in one place, so extraction, its schema and the API all follow it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Profile(BaseModel):
    """What the user has said about themselves; null where unknown."""

    model_config = ConfigDict(extra="forbid")

    first_name: str | None = Field(default=None, description="The user's first name.")
    last_name: str | None = Field(default=None, description="The user's last name.")
    income: float | None = Field(default=None, description="The user's monthly income.")


def empty_profile() -> dict[str, Any]:
    return Profile().model_dump()
