"""What a plugin author works with: `Tool`, `ToolContext` and `ToolResult`.

A tool is a name, a description, its parameters and an async handler `handler(context,
arguments)` returning a JSON-serialisable output, or a `ToolResult` for more control. The
parameters are a pydantic model (whose JSON schema is what the model sees; the handler gets an
instance) or a JSON Schema as a dict, offered as it is (the handler gets the parsed object).
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol, final

import httpx
from pydantic import BaseModel, ConfigDict

from ._tool_arguments import parse_arguments, schema_validator

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

    from ._extraction import Outcome
    from ._transcript import TranscriptEntry

Handler = Callable[["ToolContext", Any], Awaitable[Any]]


class NoArguments(BaseModel):
    """Parameters of a tool that takes none."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Tool:
    """A function tool the model may call.

    Args:
        name: what the model calls it (letters, digits, `_` and `-`).
        description: when and why to call it; the model reads this.
        handler: `async handler(context, arguments)`; *arguments* is a *parameters* instance,
            or the arguments object when *parameters* is a JSON Schema.
        parameters: a pydantic model of the arguments, or a JSON Schema (a dict, `"type":
            "object"`) checked with `jsonschema`; the default takes none.
        guidance: one line for the instructions on when to call it (optional).
        timeout_seconds: overrides `TOOL_TIMEOUT_SECONDS` for this tool.
    """

    name: str
    description: str
    handler: Handler
    parameters: type[BaseModel] | Mapping[str, Any] = NoArguments
    guidance: str = ""
    timeout_seconds: float | None = None

    def json_schema(self) -> dict[str, Any]:
        """The JSON schema of the parameters, as the model sees it."""
        if not isinstance(self.parameters, type):
            return copy.deepcopy(dict(self.parameters))
        schema = self.parameters.model_json_schema()
        schema.pop("title", None)
        schema.pop("description", None)
        schema.setdefault("properties", {})
        return schema

    @cached_property
    def _checker(self) -> type[BaseModel] | Validator:
        if isinstance(self.parameters, type):
            return self.parameters
        return schema_validator(self.parameters)

    def parameters_problem(self) -> str | None:
        """Why the parameters are a JSON Schema that is not one, in a line; None when they are
        fine. Registering a tool asks, so a bad schema is found at start-up, not at a call
        (and the schema is compiled once, here)."""
        try:
            self._checker  # noqa: B018
        except Exception as exc:  # jsonschema's SchemaError, or what a malformed schema raises
            text = str(exc)
            return text.splitlines()[0] if text else type(exc).__name__
        return None

    def parse_arguments(self, text: str) -> Any:
        """A call's arguments (JSON text) as the handler takes them.

        Raises:
            InvalidArguments: not JSON, or not what the parameters describe.
        """
        return parse_arguments(self.name, text, self._checker)

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


class ToolSession(Protocol):
    """What a tool may read and change of the session whose call it answers; the session
    implements it, and a `ToolContext` is a tool's only way to it."""

    @property
    def session_id(self) -> str: ...

    def profile_snapshot(self) -> dict[str, Any]:
        """A copy of the profile as it stands."""
        ...

    def transcript_entries(self) -> list[TranscriptEntry]:
        """The conversation so far, in order."""
        ...

    async def update_profile(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Merge *changes* into the profile; the new instructions reach the call after the
        output."""
        ...

    async def set_base_instructions(self, text: str) -> None:
        """Replace the base instructions; pushed to the call after the output."""
        ...

    async def request_extraction(self, *, throttled: bool) -> Outcome:
        """Run, or join, the session's profile extraction."""
        ...


@final
class ToolContext:
    """What a tool's handler may see and do, for the session whose call it answers.

    The handler runs in the session's nursery: it is cancelled when the session ends, and
    after its timeout.

    Args:
        session: the session, seen only through what `ToolSession` allows.
        call_id: the id of the function call being answered (one per call, a fit for an
            idempotency key).
        http: the server's pooled HTTP client, shared; it carries no credentials.
    """

    def __init__(self, session: ToolSession, *, call_id: str, http: httpx.AsyncClient) -> None:
        self._session = session
        self.call_id = call_id
        self.http = http
        self._profile: Mapping[str, Any] = MappingProxyType(session.profile_snapshot())

    def __repr__(self) -> str:
        return f"ToolContext(session_id={self.session_id!r}, call_id={self.call_id!r})"

    @property
    def session_id(self) -> str:
        """The id of the session whose call this tool answers."""
        return self._session.session_id

    @property
    def profile(self) -> Mapping[str, Any]:
        """The session's profile, read-only: as it was when the call came in, or as the last
        `update_profile` left it."""
        return self._profile

    @cached_property
    def transcript(self) -> Sequence[TranscriptEntry]:
        """The conversation so far, in order; taken when first read (most tools never look,
        and ordering a long conversation is not free)."""
        return tuple(self._session.transcript_entries())

    async def update_profile(self, changes: Mapping[str, Any]) -> Mapping[str, Any]:
        """Merge *changes* into the profile; new instructions reach the call after the output.

        Returns the new profile (also in `profile` from now on).
        """
        self._profile = MappingProxyType(await self._session.update_profile(dict(changes)))
        return self._profile

    async def set_base_instructions(self, text: str) -> None:
        """Replace the session's base instructions; pushed to the call after the output."""
        await self._session.set_base_instructions(text)

    async def extract_profile(self, *, throttled: bool = True) -> Outcome:
        """Run (or join) the session's profile extraction; used by the built-in tool."""
        return await self._session.request_extraction(throttled=throttled)
