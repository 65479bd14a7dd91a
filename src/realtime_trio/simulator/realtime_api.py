"""OpenAI's call endpoints: `POST /v1/realtime/calls` (WebRTC), `.../hangup`, and the sideband
WebSocket `GET /v1/realtime?call_id=...` that a server attaches to a call.

A refused WebSocket handshake is answered before accepting, as an HTTP response with OpenAI's
error body (Hypercorn sends it through ASGI's `websocket.http.response` extension).
"""

from __future__ import annotations

import copy
import json
import secrets
from typing import Any

from quart import Blueprint, Response, request, websocket
from quart.globals import websocket_ctx

from .auth import api_key_or_secret, bearer_key, incorrect_key, require_api_key
from .calls import CallEnded, SimCall
from .errors import OpenAIError, invalid_request
from .sdp import InvalidOffer, answer_for
from .sessions import merged, new_id, realtime_session
from .sideband import serve_socket
from .state import MintedSecret, SimulatorState
from .validation import validate_session
from .wire import SCOPE_KEY, WireTap

CALL_NOT_FOUND = {
    "error": {
        "message": "No session found for the provided call_id",
        "type": "invalid_request_error",
        "code": "call_id_not_found",
        "param": "",
    }
}


def realtime_blueprint(state: SimulatorState) -> Blueprint:
    """The call endpoints over *state*."""
    blueprint = Blueprint("realtime_calls", __name__)

    @blueprint.post("/v1/realtime/calls")
    async def create_call() -> Response:
        _, secret = api_key_or_secret(state, request.headers)
        offer, requested = await _offer_and_session()
        try:
            answer = answer_for(offer)
        except InvalidOffer as exc:
            raise invalid_request(
                f"Invalid SDP offer: {exc}.", param="sdp", code="invalid_value"
            ) from None
        call = await state.open_call(
            _call_session(secret, requested), secret=secret.value if secret else None
        )
        return Response(
            answer,
            status=201,
            content_type="application/sdp",
            headers={"Location": f"/v1/realtime/calls/{call.call_id}"},
        )

    @blueprint.post("/v1/realtime/calls/<call_id>/hangup")
    async def hangup(call_id: str) -> tuple[str, int]:
        require_api_key(state, request.headers)
        call = state.calls.get(call_id)
        if call is None or call.ended:
            raise OpenAIError(
                404, f"No call found with id '{call_id}'.", param="call_id", code="call_not_found"
            )
        call.end()
        return "", 200

    @blueprint.websocket("/v1/realtime")
    async def sideband() -> Response | None:
        try:
            call, auth = _admitted(state)
        except OpenAIError as refusal:
            return _rejection(refusal.body(), refusal.status)
        except _CallNotFound:
            return _rejection(CALL_NOT_FOUND, 404)
        await websocket.accept()
        tap = websocket.scope.get(SCOPE_KEY)
        try:
            await serve_socket(
                call,
                websocket_ctx.websocket,
                tap if isinstance(tap, WireTap) else None,
                auth=auth,
            )
        except CallEnded:
            await websocket.close(1000)  # it ended between the handshake and attaching
        return None

    return blueprint


class _CallNotFound(Exception):
    pass


def _admitted(state: SimulatorState) -> tuple[SimCall, str]:
    """The call the handshake asks for, and `"api_key"` or `"client_secret"`.

    A standard key may attach to any live call; a client secret only to the call it created
    (expired or not: expiry only limits creating calls). Another client secret this simulator
    minted finds no call, as reported for the live API; an unknown key is a 401.
    """
    key = bearer_key(websocket.headers)
    call_id = websocket.args.get("call_id")
    if not call_id:
        raise invalid_request(
            "Missing required parameter: 'call_id'.",
            param="call_id",
            code="missing_required_parameter",
        )
    call = state.calls.get(call_id)
    if state.is_api_key(key):
        auth = "api_key"
    elif call is not None and call.secret and secrets.compare_digest(key, call.secret):
        auth = "client_secret"
    elif key.startswith("ek_") and key in state.secrets:
        raise _CallNotFound
    else:
        raise incorrect_key(key)
    if call is None or call.ended:
        raise _CallNotFound
    return call, auth


def _rejection(body: dict[str, Any], status: int) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


async def _offer_and_session() -> tuple[str, dict[str, Any] | None]:
    """The SDP offer, and the `session` part of a multipart body (validated) if there is one."""
    mimetype = request.mimetype
    if mimetype == "application/sdp":
        # every argument given: only then does quart's overload know the answer is a str
        offer = await request.get_data(cache=True, as_text=True, parse_form_data=False)
        session_text = None
    elif mimetype == "multipart/form-data":
        form, files = await request.form, await request.files
        offer = _part(form, files, "sdp") or ""
        session_text = _part(form, files, "session")
    else:
        raise invalid_request(
            f"Unsupported content type: '{mimetype or 'none'}'. Send the SDP offer as "
            "'application/sdp', or as 'multipart/form-data' with 'sdp' and 'session' parts.",
            code="unsupported_content_type",
        )
    if not offer.strip():
        raise invalid_request(
            "Missing required parameter: 'sdp'.", param="sdp", code="missing_required_parameter"
        )
    if session_text is None:
        return offer, None
    try:
        session = json.loads(session_text)
    except ValueError:
        raise invalid_request(
            "Invalid 'session': expected a JSON object.", param="session", code="invalid_json"
        ) from None
    validate_session(session, prefix="session")
    if session["type"] != "realtime":
        raise invalid_request(
            f"Invalid value: '{session['type']}'. Supported values are: 'realtime'.",
            param="session.type",
            code="invalid_value",
        )
    return offer, session


def _part(form: Any, files: Any, name: str) -> str | None:
    """A multipart part as text, whether sent as a field or as a file."""
    if name in form:
        return str(form[name])
    if name in files:
        return bytes(files[name].read()).decode("utf-8", "replace")
    return None


def _call_session(secret: MintedSecret | None, requested: dict[str, Any] | None) -> dict[str, Any]:
    """The call's effective session: the secret's (variant A) or the part's (variant B).

    Each call is a session of its own, so it gets a fresh `sess_` id even from one secret.
    """
    if secret is None:
        return realtime_session(requested or {"type": "realtime"})
    session = merged(copy.deepcopy(secret.session), requested or {})
    session["id"] = new_id("sess")
    return session
