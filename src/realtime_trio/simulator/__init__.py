"""An offline simulator of the OpenAI Realtime API, for tests, the demo and benchmarks.

It answers as the real API does (shapes, statuses, error bodies) and checks what it receives
against the OpenAI SDK's published types (the `simulator` extra). Run it on its own with
`realtime-trio simulate`, or start it in-process with `run_simulator` on a nursery.

Besides minting client secrets it holds WebRTC calls (`POST /v1/realtime/calls`, ended by
`.../hangup`) and their sideband WebSockets (`/v1/realtime?call_id=...`); tests drive a call
through `/_sim/calls/...` over HTTP (see `control.py` for every route), or in-process through
`RunningSimulator.state.calls[call_id]` (a `SimCall`).

A call behaves as the API's do at their edges. Voice activity starts a response after each user
turn (`turn_detection.create_response`); what the model does in a response nobody scripted is
the next queued behaviour (`/_sim/calls/{id}/replies`: a message or a tool call). One response
at a time writes to the conversation: a second `response.create` is refused with
`conversation_already_has_active_response`. A user barging in cancels the response playing and,
for audio, clears it and truncates the item to what was heard. A `function_call_output` must
answer a function call of the conversation. A call expires `SimulatorState(max_call_seconds=)`
after it was created (60 minutes by default, `realtime-trio simulate --max-call-seconds`): an
`error` with code `session_expired`, then every socket closed with 1001 (`/_sim/calls/{id}/expire`
does it now). Tests can also make sockets close right after they open (`socket-faults`), refuse a
client event type on purpose (`refuse`), and send the app's own client events, as if on its
data channel (`app`).

It also answers the Responses API (`POST /v1/responses`, non-streaming) with a deterministic
extractor standing in for the model; `POST /_sim/responses/next` (or `state.responses.arm`)
makes its next answers refusals, incomplete, not JSON, or failed.

For benchmarks, `POST /_sim/calls/{id}/blast` sends a call's sockets a conversation's worth of
pre-encoded events far faster than per-frame sending could (then an optional marker tool call),
`POST /_sim/trickle` spreads events and tool-call probes over every live call, and tool call
results carry `time.monotonic()` timings of their frames (see `blast.py`, `trickle.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import trio

from .._hypercorn import ShutdownTrigger, serve_app
from .app import create_simulator_app
from .calls import CallEnded, ReceivedEvent, SimCall, SimSocket, ToolCallResult, UserTurn
from .responses import FAILURE_MODES, ArmedResponses, FailureMode
from .state import DEFAULT_API_KEY, Fault, SimulatorState
from .turns import ActiveResponse, SimResponse

__all__ = [
    "DEFAULT_API_KEY",
    "FAILURE_MODES",
    "ActiveResponse",
    "ArmedResponses",
    "CallEnded",
    "FailureMode",
    "Fault",
    "ReceivedEvent",
    "RunningSimulator",
    "SimCall",
    "SimResponse",
    "SimSocket",
    "SimulatorState",
    "ToolCallResult",
    "UserTurn",
    "create_simulator_app",
    "run_simulator",
]


@dataclass(frozen=True)
class RunningSimulator:
    """A simulator accepting connections at `url` (`http://host:port`)."""

    url: str
    state: SimulatorState

    @property
    def base_url(self) -> str:
        """What `OPENAI_BASE_URL` should be to use this simulator."""
        return f"{self.url}/v1"


async def run_simulator(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    state: SimulatorState | None = None,
    shutdown_trigger: ShutdownTrigger | None = None,
    task_status: trio.TaskStatus[RunningSimulator] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the simulator until *shutdown_trigger* returns or the task is cancelled.

    `task_status.started()` receives a `RunningSimulator` once it accepts connections.
    """
    state = state if state is not None else SimulatorState()
    app = create_simulator_app(state)
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            partial(serve_app, app, host=host, port=port, shutdown_trigger=shutdown_trigger)
        )
        task_status.started(RunningSimulator(url=binds[0], state=state))
