"""Fixtures and helpers for testing plugins over real sockets, as a pytest plugin.

Installed with `pip install 'realtime-trio[testing]'`, pytest loads this module by itself (the
`pytest11` entry point `realtime_trio`), so a plugin's tests can ask for its fixtures by name:

- `simulator`: the offline OpenAI simulator, started on the test's nursery on a loopback port;
  a `RunningSimulator`.
- `sim`: a `SimControl`, the simulator's control API (open calls, drive them, read what the
  server sent).
- `start_server`: `await start_server(plugins=[...], **settings)` starts a realtime-trio server
  wired to the simulator and returns its base URL.

and use `open_call(client, sim)` to get a `LiveCall` whose `call_tool(name, arguments)` makes
the simulated model call a tool and returns what the server answered (`ToolCallOutcome`).

The fixtures run on pytest-trio's `nursery`: mark the tests `@pytest.mark.trio` (or set
`trio_mode = true` in the pytest configuration). Pytest loads this module whenever the package
is installed, even without the extra, so it imports nothing heavy at its top: the simulator and
the OpenAI SDK it needs are imported when a fixture first runs (`pytest -p no:realtime_trio`
leaves it out altogether).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from functools import partial
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol, final

import httpx
import pytest
import trio
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from ._config import Settings
from ._plugins import PluginRegistry, load_plugins

if TYPE_CHECKING:
    from .simulator import RunningSimulator

__all__ = [
    "LiveCall",
    "SimControl",
    "StartServer",
    "ToolCallOutcome",
    "open_call",
    "sim",
    "simulator",
    "start_server",
]

_LOOPBACK = "127.0.0.1"
_HTTP_TIMEOUT = 30.0
_TESTING_EXTRA = "pip install 'realtime-trio[testing]'"


def _import_simulator() -> ModuleType:
    try:
        from . import simulator
    except ImportError as exc:
        raise ImportError(
            f"realtime_trio.testing needs the OpenAI simulator and its SDK: {_TESTING_EXTRA}"
        ) from exc
    return simulator


def _expect(response: httpx.Response, status: int | None = None) -> None:
    """Raise unless *response* has *status* (any 2xx when it is None)."""
    ok = response.is_success if status is None else response.status_code == status
    if not ok:
        raise AssertionError(
            f"{response.request.method} {response.request.url} answered "
            f"{response.status_code}: {response.text}"
        )


# -- the simulator ------------------------------------------------------------------------


@final
class SimControl:
    """The simulator seen from outside, over HTTP: WebRTC call creation and its `/_sim` control
    API.

    Every method raises `AssertionError` (with the answer's status and body) when the simulator
    refuses the request.

    Args:
        simulator: the running simulator.
        http: the client its requests go through; whoever made it closes it (the `sim` fixture
            closes its own at teardown).
    """

    def __init__(self, simulator: RunningSimulator, http: httpx.AsyncClient) -> None:
        self.simulator = simulator
        self.http = http

    async def create_call(self, client_secret: str) -> str:
        """Do what the app does with its ephemeral secret: POST an SDP offer to
        `/realtime/calls`; returns the new call's id."""
        from ._demo import SDP_OFFER  # the simulator is running, so this import is paid already

        response = await self.http.post(
            f"{self.simulator.base_url}/realtime/calls",
            content=SDP_OFFER,
            headers={"Authorization": f"Bearer {client_secret}", "Content-Type": "application/sdp"},
        )
        _expect(response, 201)
        return response.headers["location"].rsplit("/", 1)[-1]

    async def call(self, call_id: str) -> dict[str, Any]:
        """The call as the simulator holds it (`GET /_sim/calls/{call_id}`): its session, items,
        sockets and every event the server sent it (`clientEvents`)."""
        response = await self.http.get(f"{self.simulator.url}/_sim/calls/{call_id}")
        _expect(response, 200)
        answer: dict[str, Any] = response.json()
        return answer

    async def drive(self, call_id: str, action: str, **body: Any) -> dict[str, Any]:
        """Make something happen on a call: `POST /_sim/calls/{call_id}/{action}` with *body*
        (camelCase keys), for example `drive(call_id, "user", text="Hello.")` or
        `drive(call_id, "tool-call", name="roll_dice", arguments={"sides": 6})`; returns the
        answer (`{}` when there is none).

        As the real API's voice detection does, the simulated model answers each user turn by
        itself (the `user` action returns once that answer is done): with the next behaviour
        queued by `drive(call_id, "replies", text="Hi!")` (or `toolCall={"name": ...,
        "arguments": {...}}`), else a default reply."""
        response = await self.http.post(
            f"{self.simulator.url}/_sim/calls/{call_id}/{action}", json=body, timeout=_HTTP_TIMEOUT
        )
        _expect(response)
        answer: dict[str, Any] = response.json() if response.content else {}
        return answer

    async def arm_fault(self, path: str, **fault: Any) -> None:
        """Make the simulator misbehave on *path* (`Fault`'s fields: status, delay, times...)."""
        response = await self.http.post(
            f"{self.simulator.url}/_sim/faults", json={"path": path, **fault}
        )
        _expect(response, 201)

    async def requests(self, path: str) -> list[dict[str, Any]]:
        """The requests the simulator received on *path*, as they crossed the wire, in order."""
        response = await self.http.get(f"{self.simulator.url}/_sim/requests", params={"path": path})
        _expect(response, 200)
        received: list[dict[str, Any]] = response.json()["requests"]
        return received

    async def client_events(self, call_id: str, kind: str | None = None) -> list[dict[str, Any]]:
        """The events the server sent on the call's sideband, in order; only those whose `type`
        is *kind* when it is given (`"session.update"`, `"response.create"`...)."""
        events = [e["event"] for e in (await self.call(call_id))["clientEvents"]]
        return [e for e in events if kind is None or e.get("type") == kind]


@pytest.fixture
async def simulator(nursery: trio.Nursery) -> RunningSimulator:
    """The offline OpenAI simulator, serving on a loopback port until the test ends."""
    run_simulator = _import_simulator().run_simulator
    running: RunningSimulator = await nursery.start(partial(run_simulator, host=_LOOPBACK, port=0))
    return running


@pytest.fixture
async def sim(simulator: RunningSimulator) -> AsyncIterator[SimControl]:
    """A `SimControl` over the `simulator`, with an HTTP client of its own closed at teardown."""
    async with httpx.AsyncClient(timeout=_HTTP_TIMEOUT) as http:
        yield SimControl(simulator, http)


# -- the server ---------------------------------------------------------------------------


class _TestSettings(Settings):
    """`Settings` from the values given and the defaults only: neither the environment nor a
    `.env` file can change what a test sees, and a misspelt setting is an error."""

    model_config = SettingsConfigDict(extra="forbid")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


class StartServer(Protocol):
    """The type of the `start_server` fixture, for annotating a test's parameter."""

    async def __call__(
        self, *, plugins: PluginRegistry | Iterable[object] | None = None, **settings: Any
    ) -> str:
        """Start a server wired to the simulator; returns its base URL (`http://127.0.0.1:N`).

        Args:
            plugins: plugin objects (modules, or instances with `@hookimpl` methods) registered
                after the built-in plugin, or a ready `PluginRegistry` used as it is.
            settings: `Settings` fields by name (`tool_timeout_seconds=2`, ...), over the test
                defaults: loopback, port 0, no entry-point plugins, the simulator as upstream.
        """
        ...


@pytest.fixture
async def start_server(
    nursery: trio.Nursery, simulator: RunningSimulator
) -> AsyncIterator[StartServer]:
    """A function that starts a realtime-trio server on the test's nursery (see `StartServer`).

    Settings come from the defaults and the arguments only, never from the environment or a
    `.env` file. At teardown every server is shut down gracefully, as a signal does it, so that
    sidebands say goodbye with a close frame instead of being cut off by cancellation.
    """
    from .serve import serve

    default_api_key: str = _import_simulator().DEFAULT_API_KEY
    stop = trio.Event()
    running: list[trio.Event] = []

    async def run(
        settings: Settings,
        plugins: PluginRegistry,
        *,
        task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        done = trio.Event()
        running.append(done)
        try:
            await serve(
                settings, plugins=plugins, shutdown_trigger=stop.wait, task_status=task_status
            )
        finally:
            done.set()

    async def start(
        *, plugins: PluginRegistry | Iterable[object] | None = None, **overrides: Any
    ) -> str:
        values: dict[str, Any] = {
            "host": _LOOPBACK,
            "port": 0,
            # Plugins installed in the environment only where a test asks for them.
            "plugin_entry_points": False,
            "openai_api_key": default_api_key,
            "openai_base_url": simulator.base_url,
            **overrides,
        }
        settings = _TestSettings(**values)
        registry = _registry(settings, plugins)
        binds: list[str] = await nursery.start(partial(run, settings, registry))
        return binds[0]

    yield start
    stop.set()
    with trio.move_on_after(10):
        for done in running:
            await done.wait()


def _registry(
    settings: Settings, plugins: PluginRegistry | Iterable[object] | None
) -> PluginRegistry:
    if isinstance(plugins, PluginRegistry):
        return plugins
    if plugins is None:
        return load_plugins(settings)
    if isinstance(plugins, ModuleType | str) or not isinstance(plugins, Iterable):
        raise TypeError(
            "start_server(plugins=...) takes a list of plugin objects (modules, or instances "
            f"with @hookimpl methods) or a PluginRegistry, not {plugins!r}"
        )
    return load_plugins(settings, extra=list(plugins))


# -- a live call --------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolCallOutcome:
    """What the server answered when the simulated model called a tool (`LiveCall.call_tool`).

    Attributes:
        output: the `function_call_output`'s output, parsed from JSON.
        raw_output: the same output as the JSON text that crossed the wire.
        response_created: whether the server then asked the model to respond
            (`response.create`).
        call_id: the function call's id (what the handler saw as `context.call_id`).
    """

    output: Any
    raw_output: str
    response_created: bool
    call_id: str


@final
class LiveCall:
    """A session with a simulated WebRTC call attached to its sideband (see `open_call`).

    Attributes:
        session_id: the session's id (`sessionId` in the API).
        call_id: the WebRTC call's id, as the simulator knows it (`callId`).
        client_secret: the ephemeral client secret the call was opened with.
    """

    def __init__(
        self, sim: SimControl, *, session_id: str, call_id: str, client_secret: str
    ) -> None:
        self._sim = sim
        self.session_id = session_id
        self.call_id = call_id
        self.client_secret = client_secret

    def __repr__(self) -> str:
        return f"LiveCall(session_id={self.session_id!r}, call_id={self.call_id!r})"

    async def call_tool(
        self,
        name: str,
        arguments: dict[str, Any] | str | None = None,
        *,
        timeout_seconds: float = 10.0,
    ) -> ToolCallOutcome:
        """Make the model call tool *name* on this call and return what the server answered.

        The simulator plays a model response that calls the function with *arguments* (an
        object, or raw text to send arguments that are not JSON; none is `{}`), then waits up
        to *timeout_seconds* for the server's `function_call_output` and the `response.create`
        after it. A tool that returns `ToolResult(..., create_response=False)` makes it wait the
        whole time: pass a short *timeout_seconds* then.

        Raises:
            AssertionError: the server sent no output for the call within *timeout_seconds*,
                or the simulator refused the request.
        """
        result = await self._sim.drive(
            self.call_id,
            "tool-call",
            name=name,
            arguments={} if arguments is None else arguments,
            timeoutSeconds=timeout_seconds,
        )
        raw_output = result["output"]
        if raw_output is None:
            raise AssertionError(
                f"the server sent no function_call_output for the call to {name!r} "
                f"(call id {result['callId']}) within {timeout_seconds} seconds"
            )
        return ToolCallOutcome(
            output=json.loads(raw_output),
            raw_output=raw_output,
            response_created=bool(result["responseCreated"]),
            call_id=result["callId"],
        )

    async def client_events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """The events the server sent on this call's sideband, in order; only those whose
        `type` is *kind* when it is given."""
        return await self._sim.client_events(self.call_id, kind)


async def open_call(client: httpx.AsyncClient, sim: SimControl, **session_body: Any) -> LiveCall:
    """Play the app's part: create a session, open a call with its secret, attach it.

    `POST /session` with *session_body* (the API's camelCase fields, such as
    `instructions="Be brief."` or `enableTranscription=True`), then a simulated WebRTC call
    opened with the session's client secret, then `POST /session/call`.

    Args:
        client: an HTTP client whose `base_url` is the server's (what `start_server` returned).
        sim: the simulator's control API (the `sim` fixture).

    Returns:
        The call, once its sideband is connected.

    Raises:
        AssertionError: the server refused a request, or the sideband did not connect.
    """
    created = await client.post("/session", json=session_body)
    _expect(created, 200)
    session = created.json()
    session_id, client_secret = session["sessionId"], session["clientSecret"]
    call_id = await sim.create_call(client_secret)
    attached = await client.post("/session/call", json={"sessionId": session_id, "callId": call_id})
    _expect(attached, 200)
    sideband = attached.json().get("sideband", {})
    if sideband.get("state") != "connected":
        raise AssertionError(
            f"the sideband of session {session_id} did not connect to call {call_id}: {sideband}"
        )
    return LiveCall(sim, session_id=session_id, call_id=call_id, client_secret=client_secret)
