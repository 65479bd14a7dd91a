"""Checks what the simulator receives against the OpenAI Python SDK's published types.

The SDK's models allow extra keys, so validation alone would let a misspelt field through; the
real API refuses unknown parameters, so after validating we walk the result for extras too.
Errors come back as `OpenAIError`s in the real API's words and shape.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from .errors import OpenAIError, invalid_request

try:
    from openai.types.realtime import (
        ClientSecretCreateResponse,
        RealtimeSessionCreateRequest,
        RealtimeTranscriptionSessionCreateRequest,
    )
    from openai.types.realtime.client_secret_create_params import ExpiresAfter
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
    model_class = SESSION_MODELS.get(kind) if isinstance(kind, str) else None
    if model_class is None:
        raise invalid_request(
            f"Invalid value: '{kind}'. Supported values are: 'realtime' and 'transcription'.",
            param=f"{prefix}.type",
            code="invalid_value",
        )
    model = _validated(TypeAdapter(model_class), session, prefix)
    _reject_extras(model, prefix)
    _check_documented_ranges(session, prefix)
    return session


def check_client_secret_response(body: dict[str, Any]) -> None:
    """Assert the simulator's own answer has the SDK's `ClientSecretCreateResponse` shape."""
    _CLIENT_SECRET_RESPONSE.validate_python(body)


def _validated(adapter: TypeAdapter[Any], value: Any, prefix: str) -> Any:
    try:
        return adapter.validate_python(value, strict=True)
    except ValidationError as exc:
        raise _as_openai_error(exc, prefix) from None


def _as_openai_error(exc: ValidationError, prefix: str) -> OpenAIError:
    error = exc.errors()[0]
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


def _param_path(prefix: str, loc: tuple[int | str, ...]) -> str:
    """A dotted parameter path, without pydantic's union-branch labels (`str`, class names)."""
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif "[" in part or part in _PRIMITIVE_BRANCHES or part[:1].isupper():
            continue
        else:
            path = f"{path}.{part}" if path else part
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
    if isinstance(value, BaseModel):
        for key in value.model_extra or {}:
            raise invalid_request(
                f"Unknown parameter: '{path}.{key}'.",
                param=f"{path}.{key}",
                code="unknown_parameter",
            )
        for name, info in type(value).model_fields.items():
            _reject_extras(getattr(value, name), f"{path}.{info.alias or name}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _reject_extras(item, f"{path}[{index}]")


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
