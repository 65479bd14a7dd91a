"""The simulator's HTTP app: OpenAI's REST endpoints under `/v1`, its own control API under `/_sim`.

Everything under `/v1` is recorded (see `SimulatorState.requests`) and may be slowed or failed on
request through `POST /_sim/faults`, so tests can assert on exactly what crossed the wire and
exercise timeouts and upstream errors over real sockets. That includes the sideband WebSocket's
handshake (`GET /v1/realtime`): a fault armed for it refuses the handshake with its status.

The calls (`realtime_api.py`, driven through `control.py`) run their tasks under
`SimulatorState.run`, which the app starts when it starts serving and stops when it stops.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import trio
from quart import Response, request, websocket
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from .auth import require_api_key
from .bodies import json_body
from .control import control_blueprint, trickle_blueprint
from .errors import OpenAIError, invalid_request
from .realtime_api import realtime_blueprint
from .responses_api import responses_blueprint
from .sessions import realtime_session, transcription_session
from .stamps import stamp_requests, stamps_of
from .state import Fault, RecordedRequest, SimulatorState
from .validation import check_client_secret_response, validate_client_secret_request
from .wire import tap_websockets

logger = logging.getLogger(__name__)

JSONAnswer = tuple[dict[str, Any], int]


def create_simulator_app(state: SimulatorState) -> QuartTrio:
    """The simulator as an ASGI app over *state*."""
    app = QuartTrio(__name__)
    app.extensions["simulator"] = state
    app.asgi_app = stamp_requests(tap_websockets(app.asgi_app))  # type: ignore[method-assign]
    app.register_blueprint(realtime_blueprint(state))
    app.register_blueprint(control_blueprint(state))
    app.register_blueprint(trickle_blueprint(state))
    app.register_blueprint(responses_blueprint(state))

    @app.before_serving
    async def start_calls() -> None:
        await app.nursery.start(state.run)

    @app.after_serving
    async def stop_calls() -> None:
        state.stop()

    @app.before_websocket
    async def record_and_refuse_handshakes() -> Response | None:
        state.record(
            RecordedRequest(
                method="GET",
                path=websocket.path,
                query=websocket.query_string.decode("latin-1"),
                headers=_redacted(websocket.headers),
                body=None,
            )
        )
        fault = state.take_fault(websocket.path)
        return None if fault is None else await _apply(fault)

    @app.before_request
    async def record_and_inject_faults() -> Response | None:
        if not request.path.startswith("/v1/"):
            return None
        recorded = await _recorded(request)
        if (stamps := stamps_of(request.scope)) is not None:
            recorded.received_at = stamps.received_at  # answered_at: once its answer is sent
            stamps.recorded = recorded
        state.record(recorded)
        fault = state.take_fault(request.path)
        if fault is None:
            return None
        return await _apply(fault)

    @app.post("/v1/realtime/client_secrets")
    async def create_client_secret() -> JSONAnswer:
        require_api_key(state, request.headers)
        body = await json_body()
        requested, ttl = validate_client_secret_request(body)
        if requested["type"] == "realtime":
            session = realtime_session(requested)
        else:
            session = transcription_session(requested)
        minted = state.mint_secret(session, ttl)
        answer = {"value": minted.value, "expires_at": minted.expires_at, "session": session}
        check_client_secret_response(answer)
        return answer, 200

    @app.get("/_sim/requests")
    async def recorded_requests() -> JSONAnswer:
        path = request.args.get("path")
        kept = state.requests_to(path) if path else list(state.requests)
        return {"requests": [r.as_json() for r in kept]}, 200

    @app.delete("/_sim/requests")
    async def forget_requests() -> tuple[str, int]:
        state.requests.clear()
        return "", 204

    @app.post("/_sim/faults")
    async def arm_fault() -> JSONAnswer:
        body = await json_body()
        try:
            fault = Fault(**body)
        except TypeError as exc:
            raise invalid_request(f"Invalid fault: {exc}") from None
        state.faults.append(fault)
        return {"armed": body}, 201

    @app.delete("/_sim/faults")
    async def clear_faults() -> tuple[str, int]:
        state.faults.clear()
        return "", 204

    @app.errorhandler(OpenAIError)
    async def openai_error(exc: OpenAIError) -> JSONAnswer:
        return exc.body(), exc.status

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> JSONAnswer:
        status = exc.code or 500
        if status in (404, 405):
            message = f"Invalid URL ({request.method} {request.path})"
        else:
            message = exc.description or exc.name
        return OpenAIError(status, message).body(), status

    return app


async def _recorded(req: Any) -> RecordedRequest:
    raw = await req.get_data(as_text=False)
    try:
        body: Any = json.loads(raw) if raw.strip() else None
    except ValueError:
        body = raw.decode("utf-8", "replace")
    return RecordedRequest(
        method=req.method,
        path=req.path,
        query=req.query_string.decode("latin-1"),
        headers=_redacted(req.headers),
        body=body,
    )


def _redacted(headers: Any) -> dict[str, str]:
    """Headers by lower-case name, the authorization reduced to its first characters."""
    kept = {k.lower(): v for k, v in headers.items()}
    if "authorization" in kept:
        kept["authorization"] = kept["authorization"][:16] + "…"
    return kept


async def _apply(fault: Fault) -> Response | None:
    if fault.delay_seconds:
        await trio.sleep(fault.delay_seconds)
    if fault.status is None:
        return None
    error = fault.error or {
        "message": f"Simulated failure ({fault.status})",
        "type": "server_error" if fault.status >= 500 else "invalid_request_error",
        "param": None,
        "code": None,
    }
    response = Response(
        json.dumps({"error": error}), status=fault.status, content_type="application/json"
    )
    for name, value in fault.headers.items():
        response.headers[name] = value
    return response
