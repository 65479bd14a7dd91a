"""`POST /v1/responses` (non-streaming), and `/_sim/responses/next` to make its next answers fail.

Recording and faults (`POST /_sim/faults` with `path: "/v1/responses"`) apply here as to every
`/v1` path: see `app.py`.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field
from quart import Blueprint, request

from .auth import require_api_key
from .bodies import json_body
from .control import ControlBody, read_body
from .errors import invalid_request
from .responses import FailureMode, mentions_json, response_object
from .state import SimulatorState
from .validation import check_response, validate_response_request

JSONAnswer = tuple[dict[str, Any], int]


class Arm(ControlBody):
    mode: FailureMode
    times: int = Field(1, ge=1)


def responses_blueprint(state: SimulatorState) -> Blueprint:
    """The Responses API endpoint and its control routes over *state*."""
    blueprint = Blueprint("responses", __name__)

    @blueprint.post("/v1/responses")
    async def create_response() -> JSONAnswer:
        require_api_key(state, request.headers)
        body = validate_response_request(await json_body())
        text_format = (body.get("text") or {}).get("format") or {}
        if text_format.get("type") == "json_object" and not mentions_json(body):
            raise invalid_request(  # UNVERIFIED wording
                "Response input messages must contain the word 'json' in some form to use "
                "'text.format' of type 'json_object'.",
                param="input",
            )
        answer = response_object(body, mode=state.responses.take(), now=state.clock())
        check_response(answer)
        state.responses.answered.append(answer)
        return answer, 200

    @blueprint.post("/_sim/responses/next")
    async def arm() -> JSONAnswer:
        body = await read_body(Arm)
        state.responses.arm(body.mode, body.times)
        return {"armed": {"mode": body.mode, "times": body.times}}, 201

    @blueprint.get("/_sim/responses/next")
    async def armed() -> JSONAnswer:
        return {"armed": [{"mode": m, "times": t} for m, t in state.responses.armed]}, 200

    @blueprint.delete("/_sim/responses/next")
    async def disarm() -> tuple[str, int]:
        state.responses.clear()
        return "", 204

    return blueprint
