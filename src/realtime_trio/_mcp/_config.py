"""`MCP_SERVERS_FILE`: the MCP servers whose tools every call is offered.

The file is the `{"mcpServers": {...}}` JSON that Claude Desktop, Cursor and VS Code read, so a
deployment can reuse what it has: an entry with `command` (and `args`, `env`, `cwd`) is a stdio
server we start; one with `url` (and `headers`) a streamable-HTTP server we connect to. Ours:
`allowedTools` and `timeoutSeconds`. Keys other clients use (`type`, `disabled`, ...) are
accepted; an entry with `"disabled": true` is skipped. `${NAME}` in an `env` or `headers` value
is filled from our environment, so secrets stay out of the file.

Nothing here imports the MCP SDK: a bad file stops start-up the same with or without it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NOT_IN_A_NAME = re.compile(r"[^a-zA-Z0-9_-]")
MAX_NAME = 64
SEPARATOR = "__"


class McpConfigError(Exception):
    """`MCP_SERVERS_FILE` cannot be used; the message is one line naming it and the entry."""


class McpServerConfig(BaseModel):
    """One entry of `mcpServers`, its `${NAME}`s filled in."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    allowedTools: list[str] | None = None
    timeoutSeconds: float | None = Field(default=None, gt=0)
    disabled: bool = False

    @property
    def transport(self) -> Literal["stdio", "http"]:
        return "stdio" if self.command is not None else "http"

    @property
    def source(self) -> str:
        """How `GET /tools` names it as a tool's source."""
        return f"mcp:{self.name}"

    def offers(self, tool: str) -> bool:
        return self.allowedTools is None or tool in self.allowedTools


def load_mcp_servers(path: Path, environ: Mapping[str, str] | None = None) -> list[McpServerConfig]:
    """The enabled servers of the file at *path*, in its order.

    Raises:
        McpConfigError: the file cannot be read or parsed, an entry has neither `command` nor
            `url` (or both), a value has the wrong type, or a `${NAME}` is not set.
    """
    environ = os.environ if environ is None else environ
    where = f"MCP_SERVERS_FILE {path}"
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise McpConfigError(f"{where} cannot be read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise McpConfigError(f"{where} is not valid JSON: {exc}") from None
    servers = document.get("mcpServers") if isinstance(document, dict) else None
    if not isinstance(servers, dict):
        raise McpConfigError(f'{where} has no "mcpServers" object')
    configs = []
    for name, entry in servers.items():
        config = _entry(where, name, entry, environ)
        if not config.disabled:
            configs.append(config)
    return configs


def _entry(where: str, name: str, entry: Any, environ: Mapping[str, str]) -> McpServerConfig:
    label = f"{where}: entry {name!r}"
    if not name.strip():
        raise McpConfigError(f"{where}: an entry has an empty name")
    if not isinstance(entry, dict):
        raise McpConfigError(f"{label} is not an object")
    try:
        config = McpServerConfig.model_validate({**entry, "name": name})
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"])
        raise McpConfigError(f"{label}: {field}: {error['msg']}") from None
    if (config.command is None) == (config.url is None):
        which = "neither" if config.command is None else "both"
        raise McpConfigError(
            f'{label} has {which} "command" {"nor" if which == "neither" else "and"} "url"'
        )
    if config.url is not None and not config.url.startswith(("http://", "https://")):
        raise McpConfigError(f'{label}: "url" must be an http:// or https:// URL')
    return config.model_copy(
        update={
            "env": {k: _filled(label, v, environ) for k, v in config.env.items()},
            "headers": {k: _filled(label, v, environ) for k, v in config.headers.items()},
        }
    )


def _filled(label: str, value: str, environ: Mapping[str, str]) -> str:
    def variable(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise McpConfigError(f"{label} uses ${{{name}}}, which is not set")
        return environ[name]

    return _VARIABLE.sub(variable, value)


def call_name(server: str, tool: str) -> str:
    """The name *server*'s *tool* has on calls: `<server>__<tool>`, reduced to what the Realtime
    API accepts for a function name (`^[a-zA-Z0-9_-]{1,64}$`): other characters become `_`, and
    a longer name keeps its start and ends with a short hash of the whole, so it stays unique."""
    name = _NOT_IN_A_NAME.sub("_", f"{server}{SEPARATOR}{tool}")
    if len(name) > MAX_NAME:
        digest = hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:8]
        name = f"{name[: MAX_NAME - len(digest) - 1]}_{digest}"
    return name
