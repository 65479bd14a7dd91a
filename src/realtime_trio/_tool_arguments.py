"""A function call's arguments, checked against its tool's parameters before the tool runs.

Two kinds of parameters: a pydantic model (a plugin's usual way; the handler gets an instance)
and a raw JSON Schema (an MCP server's `inputSchema`, or a plugin that has one already; the
handler gets the parsed object). Either way, arguments that do not fit never reach the tool:
the model gets an output naming each problem, so it can correct itself and call again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

MAX_PROBLEMS = 8  # the model needs the first few to correct itself, not a wall of text


class InvalidArguments(Exception):
    """Arguments that do not fit a tool's parameters; `output()` tells the model why."""

    def __init__(self, tool: str, message: str, problems: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.tool = tool
        self.message = message
        self.problems = problems

    def output(self) -> dict[str, Any]:
        output: dict[str, Any] = {
            "ok": False,
            "reason": "invalid_arguments",
            "message": self.message,
        }
        if self.problems:
            output["errors"] = self.problems
        return output


def schema_validator(schema: Mapping[str, Any]) -> Validator:
    """A validator for *schema*, in the draft it declares (2020-12 when it declares none).

    Raises:
        jsonschema.SchemaError: *schema* is not a valid JSON Schema.
    """
    import jsonschema  # only servers with JSON Schema tools pay for importing it

    document = dict(schema)
    cls = jsonschema.validators.validator_for(document, default=jsonschema.Draft202012Validator)
    cls.check_schema(document)
    validator: Validator = cls(document, format_checker=cls.FORMAT_CHECKER)
    return validator


def parse_arguments(
    tool: str, text: str, parameters: type[BaseModel] | Validator
) -> BaseModel | dict[str, Any]:
    """*text* (the call's `arguments`) as *parameters* take it: a model instance, or the parsed
    object once it fits the schema of a validator.

    Raises:
        InvalidArguments: not JSON, or not what the parameters describe.
    """
    text = text.strip() or "{}"
    if isinstance(parameters, type) and issubclass(parameters, BaseModel):
        try:
            return parameters.model_validate_json(text)
        except ValidationError as exc:
            raise _from_pydantic(tool, exc) from None
    try:
        arguments = json.loads(text)
    except ValueError:
        raise _not_json(tool) from None
    problems = [
        {"field": _path(error.absolute_path), "problem": error.message}
        for error in sorted(parameters.iter_errors(arguments), key=lambda e: list(e.path))
    ][:MAX_PROBLEMS]
    if problems:
        raise _invalid(tool, problems)
    if not isinstance(arguments, dict):  # a schema that allows any JSON: still an object
        raise _invalid(tool, [{"field": "(arguments)", "problem": "must be a JSON object"}])
    return arguments


def _from_pydantic(tool: str, exc: ValidationError) -> InvalidArguments:
    errors = exc.errors()
    if errors and errors[0]["type"] == "json_invalid":
        return _not_json(tool)
    problems = [
        {"field": ".".join(str(p) for p in error["loc"]) or "(arguments)", "problem": error["msg"]}
        for error in errors
    ][:MAX_PROBLEMS]
    return _invalid(tool, problems)


def _not_json(tool: str) -> InvalidArguments:
    return InvalidArguments(tool, f"The arguments for {tool!r} are not valid JSON.", [])


def _invalid(tool: str, problems: list[dict[str, str]]) -> InvalidArguments:
    summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
    return InvalidArguments(tool, f"Invalid arguments for {tool!r}: {summary}", problems)


def _path(path: Any) -> str:
    return ".".join(str(part) for part in path) or "(arguments)"
