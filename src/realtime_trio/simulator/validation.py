"""Checks what the simulator receives against the OpenAI Python SDK's published types.

The SDK's models allow extra keys, so validation alone would let a misspelt field through; the
real API refuses unknown parameters, so after validating we walk the result for extras too.
Errors come back as `OpenAIError`s in the real API's words and shape.

The same types check the other direction: `check_server_event` asserts that an event the
simulator is about to send has the SDK's shape, so a simulator bug cannot teach our server a
shape the real API never sends.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Callable, Collection, Iterator
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from .errors import OpenAIError, invalid_request
from .json_schema import strict_schema_problem

try:
    from openai.types.realtime import (
        ClientSecretCreateResponse,
        ConversationItem,
        RealtimeClientEvent,
        RealtimeServerEvent,
        RealtimeSessionCreateRequest,
        RealtimeTranscriptionSessionCreateRequest,
        ResponseItemReference,
    )
    from openai.types.realtime.client_secret_create_params import ExpiresAfter
    from openai.types.responses import Response
    from openai.types.responses.response_create_params import ResponseCreateParamsNonStreaming
except ImportError as exc:  # pragma: no cover - exercised only without the extra installed
    raise ImportError(
        "the simulator checks requests against the OpenAI SDK's types: "
        "install it with  pip install 'realtime-trio[simulator]'"
    ) from exc

SESSION_MODELS: dict[str, type[BaseModel]] = {
    "realtime": RealtimeSessionCreateRequest,
    "transcription": RealtimeTranscriptionSessionCreateRequest,
}
_EXPIRES_AFTER = TypeAdapter(ExpiresAfter)
_CLIENT_SECRET_RESPONSE = TypeAdapter(ClientSecretCreateResponse)
_PRIMITIVE_BRANCHES = {"str", "int", "float", "bool", "list", "dict", "none"}
_DISCRIMINATORS = ("type", "role")


def _members_by_type(union: Any) -> dict[str, type[BaseModel]]:
    """The models of an SDK event union, keyed by the literal of their `type` field."""
    (members, *_) = typing.get_args(union)
    table: dict[str, type[BaseModel]] = {}
    for model in typing.get_args(members):
        for literal in typing.get_args(model.model_fields["type"].annotation):
            table[literal] = model
    return table


# Dispatching on `type` to the union's own members is what a discriminated union does; doing it
# here lets an error name the field at fault instead of every member the event did not match.
CLIENT_EVENTS = _members_by_type(RealtimeClientEvent)
SERVER_EVENTS = _members_by_type(RealtimeServerEvent)
_CONVERSATION_ITEM = TypeAdapter(ConversationItem)
_ITEM_REFERENCE = TypeAdapter(ResponseItemReference)
# One adapter per type, built once: building one is far dearer than validating with it.
_SESSION_ADAPTERS = {kind: TypeAdapter(model) for kind, model in SESSION_MODELS.items()}
_CLIENT_EVENT_ADAPTERS = {kind: TypeAdapter(model) for kind, model in CLIENT_EVENTS.items()}
_SERVER_EVENT_ADAPTERS = {kind: TypeAdapter(model) for kind, model in SERVER_EVENTS.items()}
# The live API sends these session keys although the SDK's session models do not declare them.
_UNDECLARED_BUT_SENT = {"session.id", "session.object"}
_RESPONSE_REQUEST = TypeAdapter(ResponseCreateParamsNonStreaming)
# The API reference's Response example has `store`; the SDK 3.57 model does not declare it.
_RESPONSE_UNDECLARED_BUT_SENT = {"store"}
_FORMAT_NAME = re.compile(r"[a-zA-Z0-9_-]+")
_LAZY_ARRAYS = ("tools", "context_management")  # `Iterable` fields of the request type


def validate_client_secret_request(body: Any) -> tuple[dict[str, Any], int]:
    """The realtime/transcription `session` and the TTL in seconds, from a `client_secrets` body.

    Raises:
        OpenAIError: 400, naming the parameter at fault.
    """
    if not isinstance(body, dict):
        raise invalid_request("Invalid body: expected a JSON object.", code="invalid_type")
    _reject_unknown(body, {"session", "expires_after"}, prefix="")

    ttl = 600
    if "expires_after" in body:
        expires_after = _validated(_EXPIRES_AFTER, body["expires_after"], "expires_after")
        _reject_unknown(body["expires_after"], {"anchor", "seconds"}, prefix="expires_after.")
        ttl = expires_after.get("seconds", ttl)
        if not 10 <= ttl <= 7200:
            raise invalid_request(
                f"Invalid 'expires_after.seconds': integer below minimum value or above maximum "
                f"value. Expected a value between 10 and 7200, but got {ttl} instead.",
                param="expires_after.seconds",
                code="integer_out_of_range",
            )

    session = body.get("session", {"type": "realtime"})
    return validate_session(session, prefix="session"), ttl


def validate_session(session: Any, *, prefix: str) -> dict[str, Any]:
    """A session object checked against the SDK model of its `type`; returned as sent."""
    if not isinstance(session, dict):
        raise invalid_request(
            f"Invalid type for '{prefix}': expected an object.", param=prefix, code="invalid_type"
        )
    kind = session.get("type")
    if kind is None:
        raise invalid_request(
            f"Missing required parameter: '{prefix}.type'.",
            param=f"{prefix}.type",
            code="missing_required_parameter",
        )
    adapter = _SESSION_ADAPTERS.get(kind) if isinstance(kind, str) else None
    if adapter is None:
        raise invalid_request(
            f"Invalid value: '{kind}'. Supported values are: 'realtime' and 'transcription'.",
            param=f"{prefix}.type",
            code="invalid_value",
        )
    model = _validated(adapter, session, prefix)
    _reject_extras(model, prefix)
    _check_documented_ranges(session, prefix)
    return session


def check_client_secret_response(body: dict[str, Any]) -> None:
    """Assert the simulator's own answer has the SDK's `ClientSecretCreateResponse` shape."""
    _CLIENT_SECRET_RESPONSE.validate_python(body)


def validate_response_request(body: Any) -> dict[str, Any]:
    """A `POST /v1/responses` body checked against the SDK's non-streaming request type, and a
    `json_schema` format against strict mode's rules when `strict` is true; returned as sent.

    Raises:
        OpenAIError: 400, naming the parameter at fault.
    """
    if not isinstance(body, dict):
        raise invalid_request("Invalid body: expected a JSON object.", code="invalid_type")
    for flag in ("stream", "background"):
        if body.get(flag) is True:  # the simulator's own refusal: the API supports both
            raise invalid_request(
                f"'{flag}': true is not supported by the offline simulator; send false or "
                "leave it out.",
                param=flag,
                code="unsupported_value",
            )
    for key in _LAZY_ARRAYS:  # pydantic would take any iterable there, a string or an object
        if body.get(key) is not None and not isinstance(body[key], list):
            raise invalid_request(
                f"Invalid type for '{key}': expected an array.", param=key, code="invalid_type"
            )
    kept = _validated(_RESPONSE_REQUEST, body, "")
    for param in _dropped_keys(body, kept, ""):
        raise invalid_request(
            f"Unknown parameter: '{param}'.", param=param, code="unknown_parameter"
        )
    if "model" not in body:
        raise invalid_request(
            "Missing required parameter: 'model'.",
            param="model",
            code="missing_required_parameter",
        )
    text_format = (body.get("text") or {}).get("format") or {}
    if text_format.get("type") == "json_schema":
        _check_json_schema_format(text_format)
    return body


def _check_json_schema_format(text_format: dict[str, Any]) -> None:
    name = text_format["name"]
    if not name:
        raise invalid_request(
            "Invalid 'text.format.name': string too short. Expected a string with minimum "
            "length 1, but got an empty string instead.",
            param="text.format.name",
            code="string_below_min_length",
        )
    if len(name) > 64:
        raise invalid_request(
            "Invalid 'text.format.name': string too long. Expected a string with maximum "
            f"length 64, but got a string with length {len(name)} instead.",
            param="text.format.name",
            code="string_above_max_length",
        )
    if not _FORMAT_NAME.fullmatch(name):
        raise invalid_request(
            "Invalid 'text.format.name': string does not match pattern. Expected a string "
            "that matches the pattern '^[a-zA-Z0-9_-]+$'.",
            param="text.format.name",
            code="invalid_value",
        )
    problem = text_format.get("strict") and strict_schema_problem(text_format["schema"])
    if problem:
        raise invalid_request(
            f"Invalid schema for response_format '{name}': {problem}",
            param="text.format.schema",
            code="invalid_json_schema",  # UNVERIFIED code
        )


def _dropped_keys(sent: Any, kept: Any, path: str) -> Iterator[str]:
    """The paths of keys in *sent* that validation into the SDK's TypedDicts left out of *kept*.

    The request types are TypedDicts, which pydantic validates by dropping unknown keys; their
    `Iterable` fields come back as lazy iterators, validated here as they are consumed.
    """
    if isinstance(sent, dict) and isinstance(kept, dict):
        for key, value in sent.items():
            if key not in kept:
                yield _joined(path, key)
            else:
                yield from _dropped_keys(value, kept[key], _joined(path, key))
    elif isinstance(sent, list):
        if not isinstance(kept, list | tuple):
            try:
                kept = list(kept)
            except ValidationError as exc:
                raise _as_openai_error(exc, path) from None
        for index, (item, checked) in enumerate(zip(sent, kept, strict=False)):
            yield from _dropped_keys(item, checked, f"{path}[{index}]")


def check_response(body: dict[str, Any]) -> None:
    """Assert a `/v1/responses` answer of the simulator has the SDK's `Response` shape.

    Raises:
        AssertionError: naming what is wrong (a simulator bug).
    """
    _check_sdk_shape(
        Response.model_validate,
        body,
        what="the response",
        sent_anyway=_RESPONSE_UNDECLARED_BUT_SENT,
    )
    if "output_text" in body:
        raise AssertionError("output_text is the SDK's property, not a field of the API")


def validate_client_event(event: Any) -> dict[str, Any]:
    """A client event checked against the SDK's `RealtimeClientEvent` union; returned as sent.

    Raises:
        OpenAIError: naming the parameter at fault, for the `error` event the API answers with.
    """
    if not isinstance(event, dict):
        raise invalid_request(
            "Invalid event: expected a JSON object.", param=None, code="invalid_type"
        )
    kind = event.get("type")
    if kind is None:
        raise invalid_request(
            "Missing required parameter: 'type'.", param="type", code="missing_required_parameter"
        )
    adapter = _CLIENT_EVENT_ADAPTERS.get(kind) if isinstance(kind, str) else None
    if adapter is None:
        supported = ", ".join(f"'{name}'" for name in CLIENT_EVENTS)
        raise invalid_request(
            f"Invalid value: '{kind}'. Supported values are: {supported}.",
            param="type",
            code="invalid_value",
        )
    checked = event
    if kind == "session.update" and "session" in event:
        validate_session(event["session"], prefix="session")
    elif kind == "response.create":
        checked = _without_response_input(event)
    model = _validated(adapter, checked, "")
    _reject_extras(model, "")
    return event


def _without_response_input(event: dict[str, Any]) -> dict[str, Any]:
    """Check `response.input` entry by entry; the event without it is checked by the caller.

    The API takes `{"type": "item_reference", "id": ...}` entries there, which the SDK's event
    model does not declare (only its `...WithReferencesParam` variant does).
    """
    response = event.get("response")
    if not isinstance(response, dict) or not isinstance(response.get("input"), list):
        return event
    for index, entry in enumerate(response["input"]):
        is_reference = isinstance(entry, dict) and entry.get("type") == "item_reference"
        adapter = _ITEM_REFERENCE if is_reference else _CONVERSATION_ITEM
        path = f"response.input[{index}]"
        _reject_extras(_validated(adapter, entry, path), path)
    rest = {key: value for key, value in response.items() if key != "input"}
    return {**event, "response": rest}


def check_server_event(event: dict[str, Any]) -> None:
    """Assert an event the simulator sends has the SDK's shape and only keys the SDK declares.

    Raises:
        AssertionError: naming the event type and what is wrong (a simulator bug).
    """
    kind = event.get("type")
    if not isinstance(kind, str) or (adapter := _SERVER_EVENT_ADAPTERS.get(kind)) is None:
        raise AssertionError(f"not a server event type of the SDK: {kind!r}")
    _check_sdk_shape(adapter.validate_python, event, what=kind, sent_anyway=_UNDECLARED_BUT_SENT)


def _check_sdk_shape(
    validate: Callable[[Any], Any], value: Any, *, what: str, sent_anyway: Collection[str]
) -> None:
    """Assert *value* validates as the SDK's model and holds no key it does not declare (but
    those the real API is known to send anyway)."""
    try:
        model = validate(value)
    except ValidationError as exc:
        raise AssertionError(f"{what} does not match the SDK: {exc}") from None
    extras = [path for path in undeclared_keys(model) if path not in sent_anyway]
    if extras:
        raise AssertionError(f"{what} has keys the SDK does not declare: {extras}")


def undeclared_keys(value: Any, path: str = "") -> Iterator[str]:
    """The dotted paths of every key a validated SDK model holds but does not declare."""
    if isinstance(value, BaseModel):
        for key in value.model_extra or {}:
            yield _joined(path, key)
        for name, info in type(value).model_fields.items():
            yield from undeclared_keys(getattr(value, name), _joined(path, info.alias or name))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from undeclared_keys(item, f"{path}[{index}]")


def _joined(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _validated(adapter: TypeAdapter[Any], value: Any, prefix: str) -> Any:
    try:
        return adapter.validate_python(value, strict=True)
    except ValidationError as exc:
        raise _as_openai_error(exc, prefix) from None


def _as_openai_error(exc: ValidationError, prefix: str) -> OpenAIError:
    errors = exc.errors()
    error = _on_matching_branch(errors)
    if error is None:
        return _discriminator_error(errors, prefix)
    param = _param_path(prefix, error["loc"])
    if error["type"] == "missing":
        return invalid_request(
            f"Missing required parameter: '{param}'.",
            param=param,
            code="missing_required_parameter",
        )
    if error["type"].endswith("_type"):
        return invalid_request(
            f"Invalid type for '{param}': {error['msg']}.", param=param, code="invalid_type"
        )
    return invalid_request(
        f"Invalid value for '{param}': {error['msg']}.", param=param, code="invalid_value"
    )


def _refused_branches(errors: list[Any]) -> dict[tuple[Any, ...], set[str]]:
    """Union members refused on their `type` or `role` literal, with the literals refused."""
    refused: dict[tuple[Any, ...], set[str]] = {}
    for error in errors:
        loc = error["loc"]
        if (
            error["type"] == "literal_error"
            and len(loc) >= 2
            and loc[-1] in _DISCRIMINATORS
            and _is_branch_label(loc[-2])
        ):
            refused.setdefault(loc[:-1], set()).add(str(loc[-1]))
    return refused


def _on_matching_branch(errors: list[Any]) -> Any:
    """The first error inside a union member the value was meant for, if there is one.

    Pydantic reports a union failure once per member; only the member whose `type` (and `role`)
    matched says something useful about the value.
    """
    refused = _refused_branches(errors)
    for error in errors:
        loc = error["loc"]
        if not any(
            loc[: index + 1] in refused for index, part in enumerate(loc) if _is_branch_label(part)
        ):
            return error
    return None


def _discriminator_error(errors: list[Any], prefix: str) -> OpenAIError:
    """Every union member refused the value's `type` (or `role`): name it and its values."""
    refused = _refused_branches(errors)
    candidates = [e for e in errors if e["type"] == "literal_error" and e["loc"][:-1] in refused]
    roles = [
        e for e in candidates if e["loc"][-1] == "role" and "type" not in refused[e["loc"][:-1]]
    ]
    chosen = roles or [e for e in candidates if e["loc"][-1] == "type"] or candidates or errors
    param = _param_path(prefix, chosen[0]["loc"])
    expected: list[str] = []
    for error in chosen:
        if _param_path(prefix, error["loc"]) == param:
            value = str((error.get("ctx") or {}).get("expected", ""))
            if value and value not in expected:
                expected.append(value)
    return invalid_request(
        f"Invalid value: '{chosen[0].get('input')}'. Supported values are: {', '.join(expected)}.",
        param=param,
        code="invalid_value",
    )


def _is_branch_label(part: int | str) -> bool:
    """Whether a location part is pydantic's name for a union member rather than a field."""
    return isinstance(part, str) and (
        "[" in part or part in _PRIMITIVE_BRANCHES or part[:1].isupper()
    )


def _param_path(prefix: str, loc: tuple[int | str, ...]) -> str:
    """A dotted parameter path, without pydantic's union-branch labels (`str`, class names)."""
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif _is_branch_label(part):
            continue
        else:
            path = _joined(path, part)
    return path


def _reject_unknown(mapping: dict[str, Any], known: set[str], *, prefix: str) -> None:
    for key in mapping:
        if key not in known:
            raise invalid_request(
                f"Unknown parameter: '{prefix}{key}'.",
                param=f"{prefix}{key}",
                code="unknown_parameter",
            )


def _reject_extras(value: Any, path: str) -> None:
    """Refuse any key the SDK model does not declare, at any depth."""
    for param in undeclared_keys(value, path):
        raise invalid_request(
            f"Unknown parameter: '{param}'.", param=param, code="unknown_parameter"
        )


def _check_documented_ranges(session: dict[str, Any], prefix: str) -> None:
    """Rules the API documents but the SDK's types cannot express."""
    modalities = session.get("output_modalities")
    if isinstance(modalities, list) and len(set(modalities)) > 1:
        raise invalid_request(
            f"Invalid '{prefix}.output_modalities': only one of 'audio' or 'text' may be given.",
            param=f"{prefix}.output_modalities",
            code="invalid_value",
        )
    max_tokens = session.get("max_output_tokens")
    if isinstance(max_tokens, int) and not 1 <= max_tokens <= 4096:
        raise invalid_request(
            f"Invalid '{prefix}.max_output_tokens': expected a value between 1 and 4096 or 'inf'.",
            param=f"{prefix}.max_output_tokens",
            code="integer_out_of_range",
        )
    speed = ((session.get("audio") or {}).get("output") or {}).get("speed")
    if isinstance(speed, int | float) and not 0.25 <= speed <= 1.5:
        raise invalid_request(
            f"Invalid '{prefix}.audio.output.speed': expected a value between 0.25 and 1.5.",
            param=f"{prefix}.audio.output.speed",
            code="decimal_out_of_range",
        )
