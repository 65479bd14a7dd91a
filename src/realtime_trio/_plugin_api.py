"""What a plugin author works with: `Tool`, `ToolContext` and `ToolResult`.

A tool is a name, a description, its parameters as a pydantic model (whose JSON schema is what
the model sees) and an async handler `handler(context, arguments)` returning a JSON-serialisable
output, or a `ToolResult` for more control.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import BaseModel

if TYPE_CHECKING:
    from ._config import Settings
    from ._transcript import TranscriptEntry

Handler = Callable[["ToolContext", Any], Awaitable[Any]]


class NoArguments(BaseModel):
    """Parameters of a tool that takes none."""

    model_config = {"extra": "forbid"}


@dataclass(frozen=True)
class Tool:
    """A function tool the model may call.

    Args:
        name: what the model calls it (letters, digits, `_` and `-`).
        description: when and why to call it; the model reads this.
        handler: `async handler(context, arguments)`; *arguments* is a *parameters* instance.
        parameters: a pydantic model of the arguments; the default takes none.
        guidance: one line for the instructions on when to call it (optional).
        timeout_seconds: overrides `TOOL_TIMEOUT_SECONDS` for this tool.
    """

    name: str
    description: str
    handler: Handler
    parameters: type[BaseModel] = NoArguments
    guidance: str = ""
    timeout_seconds: float | None = None

    def json_schema(self) -> dict[str, Any]:
        schema = self.parameters.model_json_schema()
        schema.pop("title", None)
        schema.pop("description", None)
        schema.setdefault("properties", {})
        return schema

    def definition(self) -> dict[str, Any]:
        """The tool as sent in `session.tools`."""
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": self.json_schema(),
        }


@dataclass(frozen=True)
class ToolResult:
    """A handler's answer when a plain output is not enough.

    Args:
        output: what the model receives (JSON-serialisable).
        create_response: False to leave the model silent after this output (no
            `response.create` from the server for it).
    """

    output: Any
    create_response: bool = True


@dataclass
class ToolContext:
    """What a tool's handler may see and do, for the session whose call it answers.

    The handler runs in the session's nursery: it is cancelled when the session ends, and
    after its timeout.
    """

    session_id: str
    profile: Mapping[str, Any]
    settings: Settings
    http: httpx.AsyncClient
    _session: Any = field(repr=False)

    @cached_property
    def transcript(self) -> Sequence[TranscriptEntry]:
        """The conversation so far, in order; taken when first read (most tools never look,
        and ordering a long conversation is not free)."""
        return tuple(self._session.record.transcript.entries())

    async def update_profile(self, changes: Mapping[str, Any]) -> Mapping[str, Any]:
        """Merge *changes* into the profile; new instructions reach the call after the output."""
        self.profile = MappingProxyType(await self._session.update_profile(dict(changes)))
        return self.profile

    async def set_base_instructions(self, text: str) -> None:
        """Replace the session's base instructions; pushed to the call after the output."""
        await self._session.set_base_instructions(text)

    async def extract_profile(self, *, throttled: bool = True) -> Any:
        """Run (or join) the session's profile extraction; used by the built-in tool."""
        return await self._session.request_extraction(throttled=throttled)
