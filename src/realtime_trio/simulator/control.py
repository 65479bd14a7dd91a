"""The control API under `/_sim/calls`: what tests over HTTP use to drive a call.

Each route is the HTTP face of a `SimCall` method (bodies in camelCase, durations in ms there and
in seconds in Python). Unknown call ids are a 404, an ended call a 409, a body with unknown or
mistyped keys a 400, all in OpenAI's error shape.

`POST /_sim/calls/{id}/...`:

- `user` `{"text", "transcriptionDelayMs"?, "transcriptionFails"?, "respond"?,
  "waitForResponse"?}`: the user speaks; voice activity then starts a response if the session
  says so (see `turns.py`). Answers `{"itemId"}`, plus `"responseId"` (and `"callId"` for a
  function call) of the response the turn started, once its `response.done` is queued, or
  at once with `"waitForResponse": false`.
- `assistant` `{"text", "deltaDelayMs"?}`: the model says *text*; `{"responseId", "itemId"}`.
- `replies` `{"text", "deltaDelayMs"?}` or `{"toolCall": {"name", "arguments"?},
  "deltaDelayMs"?}`: queue what the model does in the next response nobody scripted (a
  client's, the app's or voice activity's); `{"queued": n}`.
- `tool-call` `{"name", "arguments"?, "wait"?, "timeoutSeconds"?, "deltaDelayMs"?}`: the model
  calls a function now; what the client answered (`ToolCallResult`).
- `app` `{"event"}`: the app sends this client event on its data channel;
  `{"accepted", "error", "responseId"?, "callId"?}`.
- `refuse` `{"type", "times"?, "code"?, "message"?, "param"?}`: the next `times` client events
  of `type` from a sideband socket are answered with an `error` and not applied;
  `{"type", "times"}` (how many are now armed).
- `socket-faults` `{"closeCode"?, "reason"?, "times"?, "abrupt"?}`: the next `times` sockets
  opened on the call are accepted and closed at once; `{"socketFaults": n}` (now armed).
- `expire`: the call hits its maximum duration now; `end`: it ends (hang-up); `drop`: its
  sockets are dropped; `send` `{"raw"|"event", "socketId"?}`: a frame, unchecked.

Benchmarks have two more: `POST /_sim/calls/{id}/blast` (`blast.py`) and `POST /_sim/trickle`
(`trickle.py`, on a blueprint of its own as it spans every call). Their times are
`time.monotonic()` seconds, comparable across processes on one machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel
from quart import Blueprint, request

from .blast import NoOpenSocket, blast
from .calls import CallEnded, FunctionCall, SimCall
from .client_events import handle_app_event
from .errors import OpenAIError, invalid_request
from .state import SimulatorState
from .trickle import trickle
from .turns import ActiveResponse, SimResponse
from .validation import CLIENT_EVENTS

JSONAnswer = tuple[dict[str, Any], int]


class ControlBody(BaseModel):
    """A control API body: camelCase keys, strict types, nothing unknown."""

    # Only ever parsed from JSON, never built by keyword: pydantic's mypy plugin warns about
    # an `__init__` it cannot type, and `validate_by_name` would let snake_case keys in.
    model_config = ConfigDict(extra="forbid", strict=True, alias_generator=to_camel)  # type: ignore[pydantic-alias]


Body = TypeVar("Body", bound=ControlBody)


class Empty(ControlBody):
    pass


class UserTurn(ControlBody):
    text: str
    transcription_delay_ms: int = Field(0, ge=0)
    transcription_fails: bool = False
    respond: bool = False
    wait_for_response: bool = True


class AssistantTurn(ControlBody):
    text: str
    delta_delay_ms: int = Field(0, ge=0)


class QueuedToolCall(ControlBody):
    name: str
    arguments: dict[str, Any] | str = Field(default_factory=dict)


class Reply(ControlBody):
    text: str | None = None
    tool_call: QueuedToolCall | None = None
    delta_delay_ms: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _one_of(self) -> Reply:
        if (self.text is None) == (self.tool_call is None):
            raise ValueError("give exactly one of 'text' and 'toolCall'")
        return self


class AppEvent(ControlBody):
    event: dict[str, Any]


class Refusal(ControlBody):
    type: str
    times: int = Field(1, ge=1)
    code: str | None = "refused_by_simulator"
    message: str = Field("The simulator refused this event, as a test asked it to.", min_length=1)
    param: str | None = None

    @model_validator(mode="after")
    def _a_client_event(self) -> Refusal:
        if self.type not in CLIENT_EVENTS:
            raise ValueError(f"'{self.type}' is not a client event type")
        return self


# Codes a close frame may carry (RFC 6455 7.4): 1004-1006 and 1015 are never sent, 1016-2999
# are unassigned.
_SENDABLE_CLOSE_CODES = {*range(1000, 1004), *range(1007, 1015), *range(3000, 5000)}


class SocketFaults(ControlBody):
    close_code: int = 1011
    reason: str = ""
    times: int = Field(1, ge=1)
    abrupt: bool = False

    @model_validator(mode="after")
    def _sendable(self) -> SocketFaults:
        if self.close_code not in _SENDABLE_CLOSE_CODES:
            raise ValueError(f"{self.close_code} is not a close code a close frame may carry")
        if len(self.reason.encode()) > 123:
            raise ValueError("a close reason is at most 123 bytes of UTF-8")
        return self


class ToolCall(ControlBody):
    name: str
    arguments: dict[str, Any] | str = Field(default_factory=dict)
    wait: bool = True
    timeout_seconds: float = Field(10.0, gt=0)
    delta_delay_ms: int = Field(0, ge=0)


class Function(ControlBody):
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)

    def call(self) -> FunctionCall:
        return FunctionCall(self.name, self.arguments)


MAX_BLAST_EVENTS = 10_000_000  # about 3 GB encoded: more would rather exhaust memory than help


class Blast(ControlBody):
    count: int = Field(ge=1, le=MAX_BLAST_EVENTS)
    marker: Function | None = None
    socket_id: int | None = None
    timeout_seconds: float = Field(60.0, gt=0)


class Trickle(ControlBody):
    seconds: float = Field(gt=0)
    events_per_second: float = Field(gt=0)
    probe: Function | None = None
    probes_per_second: float = Field(0.0, ge=0)
    timeout_seconds: float = Field(10.0, gt=0)


class Send(ControlBody):
    raw: str | None = None
    event: dict[str, Any] | None = None
    socket_id: int | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Send:
        if (self.raw is None) == (self.event is None):
            raise ValueError("give exactly one of 'raw' and 'event'")
        return self


def control_blueprint(state: SimulatorState) -> Blueprint:
    """The `/_sim/calls` routes over *state*'s calls."""
    blueprint = Blueprint("sim_calls", __name__, url_prefix="/_sim/calls")

    def live(call_id: str) -> SimCall:
        call = found(call_id)
        if call.ended:
            raise _ended(call_id)
        return call

    def found(call_id: str) -> SimCall:
        call = state.calls.get(call_id)
        if call is None:
            raise OpenAIError(
                404, f"No call found with id '{call_id}'.", param="call_id", code="call_not_found"
            )
        return call

    @blueprint.get("")
    async def list_calls() -> JSONAnswer:
        return {"calls": [call.summary() for call in state.calls.values()]}, 200

    @blueprint.get("/<call_id>")
    async def get_call(call_id: str) -> JSONAnswer:
        return found(call_id).as_json(), 200

    @blueprint.post("/<call_id>/user")
    async def user(call_id: str) -> JSONAnswer:
        call, body = live(call_id), await read_body(UserTurn)
        with _call_errors(call_id):
            turn = await call.user_speaks(
                body.text,
                transcription_delay=body.transcription_delay_ms / 1000,
                transcription_fails=body.transcription_fails,
                respond=body.respond,
            )
        if turn.response is not None and body.wait_for_response:
            await turn.response.finished.wait()
        return {"itemId": turn.item_id, **_started(turn.response)}, 200

    @blueprint.post("/<call_id>/assistant")
    async def assistant(call_id: str) -> JSONAnswer:
        call, body = live(call_id), await read_body(AssistantTurn)
        with _call_errors(call_id):
            response = await call.assistant_says(body.text, delta_delay=body.delta_delay_ms / 1000)
        return {"responseId": response.id, "itemId": response.item_id}, 200

    @blueprint.post("/<call_id>/replies")
    async def replies(call_id: str) -> JSONAnswer:
        call, body = live(call_id), await read_body(Reply)
        delay = body.delta_delay_ms / 1000
        if body.tool_call is not None:
            queued = call.queue_tool_call(
                body.tool_call.name, body.tool_call.arguments, delta_delay=delay
            )
        else:
            queued = call.queue_reply(body.text or "", delta_delay=delay)
        return {"queued": queued}, 200

    @blueprint.post("/<call_id>/app")
    async def app_event(call_id: str) -> JSONAnswer:
        call, body = live(call_id), await read_body(AppEvent)
        before = set(call.responses)
        with _call_errors(call_id):
            error = handle_app_event(call, body.event)
        started = [r for r in call.responses.values() if r.id not in before]
        answer = {"accepted": error is None, "error": error}
        return {**answer, **_started(started[0] if started else None)}, 200

    @blueprint.post("/<call_id>/refuse")
    async def refuse(call_id: str) -> JSONAnswer:
        call, body = live(call_id), await read_body(Refusal)
        refusal = OpenAIError(400, body.message, param=body.param, code=body.code)
        armed = call.arm_refusal(body.type, refusal, times=body.times)
        return {"type": body.type, "times": armed}, 200

    @blueprint.post("/<call_id>/socket-faults")
    async def socket_faults(call_id: str) -> JSONAnswer:
        call, body = live(call_id), await read_body(SocketFaults)
        armed = call.arm_socket_faults(
            body.close_code, reason=body.reason, abrupt=body.abrupt, times=body.times
        )
        return {"socketFaults": armed}, 200

    @blueprint.post("/<call_id>/expire")
    async def expire(call_id: str) -> JSONAnswer:
        call = live(call_id)
        await read_body(Empty)
        closed = call.expire()
        return {"callId": call.call_id, "ended": True, "closedSockets": closed}, 200

    @blueprint.post("/<call_id>/tool-call")
    async def tool_call(call_id: str) -> JSONAnswer:
        call, body = live(call_id), await read_body(ToolCall)
        with _call_errors(call_id):
            result = await call.tool_call(
                body.name,
                body.arguments,
                wait_seconds=body.timeout_seconds if body.wait else 0,
                delta_delay=body.delta_delay_ms / 1000,
            )
        return result.as_json(), 200

    @blueprint.post("/<call_id>/blast")
    async def blast_events(call_id: str) -> JSONAnswer:
        call, body = live(call_id), await read_body(Blast)
        with _call_errors(call_id):
            result = await blast(
                call,
                body.count,
                marker=body.marker.call() if body.marker else None,
                socket_id=body.socket_id,
                timeout_seconds=body.timeout_seconds,
            )
        return result.as_json(), 200

    @blueprint.post("/<call_id>/end")
    async def end(call_id: str) -> JSONAnswer:
        call = found(call_id)
        closed = call.end()
        return {"callId": call.call_id, "ended": True, "closedSockets": closed}, 200

    @blueprint.post("/<call_id>/drop")
    async def drop(call_id: str) -> JSONAnswer:
        return {"droppedSockets": live(call_id).drop()}, 200

    @blueprint.post("/<call_id>/send")
    async def send(call_id: str) -> JSONAnswer:
        call, body = live(call_id), await read_body(Send)
        if body.raw is not None:
            sent = call.send_raw(body.raw, socket_id=body.socket_id)
        else:
            sent = call.send_event(body.event or {}, socket_id=body.socket_id)
        return {"sent": sent}, 200

    return blueprint


def trickle_blueprint(state: SimulatorState) -> Blueprint:
    """`POST /_sim/trickle`, over every call of *state* with an open socket."""
    blueprint = Blueprint("sim_trickle", __name__, url_prefix="/_sim")

    @blueprint.post("/trickle")
    async def trickle_events() -> JSONAnswer:
        body = await read_body(Trickle)
        report = await trickle(
            list(state.calls.values()),
            seconds=body.seconds,
            events_per_second=body.events_per_second,
            probe=body.probe.call() if body.probe else None,
            probes_per_second=body.probes_per_second,
            timeout_seconds=body.timeout_seconds,
        )
        return report.as_json(), 200

    return blueprint


async def read_body(model: type[Body]) -> Body:
    """The JSON body as *model* (an absent body is `{}`); a 400 naming the key at fault."""
    raw = await request.get_data(as_text=True)
    try:
        return model.model_validate_json(raw if raw.strip() else "{}")
    except ValidationError as exc:
        error = exc.errors()[0]
        param = ".".join(str(part) for part in error["loc"]) or None
        raise invalid_request(
            f"Invalid body{f' at {param!r}' if param else ''}: {error['msg']}.",
            param=param,
            code="invalid_value",
        ) from None


def _started(response: SimResponse | None) -> dict[str, str]:
    """`responseId` (and `callId` for a function call) of a response a control started."""
    if response is None:
        return {}
    answer = {"responseId": response.id}
    if response.call_id is not None:
        answer["callId"] = response.call_id
    return answer


def _ended(call_id: str) -> OpenAIError:
    return OpenAIError(409, f"The call '{call_id}' has ended.", param="call_id", code="call_ended")


@contextmanager
def _call_errors(call_id: str) -> Iterator[None]:
    """Turn a call's refusals into the control API's answers (409s)."""
    try:
        yield
    except CallEnded:
        raise _ended(call_id) from None
    except ActiveResponse as exc:
        raise OpenAIError(
            409,
            f"A response is already in progress: {exc.response_id}.",
            code="conversation_already_has_active_response",
        ) from None
    except NoOpenSocket as exc:
        raise OpenAIError(409, str(exc), param="socketId", code="no_open_socket") from None
