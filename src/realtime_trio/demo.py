"""`realtime-trio demo`: server and simulator on loopback, driven as an app would drive them.

For now it mints a token through the server and shows what crossed the wire on both sides;
the sessions issue grows it into a whole conversation.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio

from .config import Settings
from .serve import serve
from .simulator import DEFAULT_API_KEY, RunningSimulator, run_simulator

TOKEN_REQUEST = {"model": "gpt-realtime", "voice": "marin", "enableTranscription": True}


class DemoFailed(Exception):
    """A demo step did not do what it should; the message names the step."""


@dataclass
class Timeline:
    started: float = field(default_factory=time.perf_counter)
    steps: list[dict[str, Any]] = field(default_factory=list)

    def add(self, what: str, **details: Any) -> None:
        elapsed_ms = round((time.perf_counter() - self.started) * 1000, 1)
        self.steps.append({"ms": elapsed_ms, "what": what, **details})


async def run_demo() -> dict[str, Any]:
    """Run the demo and return its report; raises `DemoFailed` naming the step that failed."""
    timeline = Timeline()
    failure: DemoFailed | None = None
    async with trio.open_nursery() as nursery:
        simulator: RunningSimulator = await nursery.start(run_simulator)
        timeline.add("simulator started", url=simulator.base_url)
        # Environment settings apply (LOG_LEVEL, models...), but not a developer's .env, and
        # the upstream is always the embedded simulator.
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            openai_api_key=DEFAULT_API_KEY,
            openai_base_url=simulator.base_url,
            host="127.0.0.1",
            port=0,
        )
        binds = await nursery.start(serve, settings)
        timeline.add("server started", url=binds[0])
        try:
            token = await _mint_token(binds[0], simulator, timeline)
        except DemoFailed as exc:
            failure = exc
        nursery.cancel_scope.cancel()
    if failure is not None:
        raise failure
    return {"ok": True, "timeline": timeline.steps, "token": token}


async def _mint_token(
    server_url: str, simulator: RunningSimulator, timeline: Timeline
) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server_url, timeout=10) as client:
        timeline.add("app -> server: POST /token", body=TOKEN_REQUEST)
        response = await client.post("/token", json=TOKEN_REQUEST)
    if response.status_code != 200:
        raise DemoFailed(f"POST /token answered {response.status_code}: {response.text}")
    token: dict[str, Any] = response.json()
    upstream = simulator.state.requests_to("/v1/realtime/client_secrets")
    if len(upstream) != 1:
        raise DemoFailed(f"POST /token: the simulator saw {len(upstream)} client_secrets calls")
    timeline.add("server -> OpenAI: POST /v1/realtime/client_secrets", body=upstream[0].body)
    timeline.add(
        "server -> app: 200",
        clientSecret=token["clientSecret"][:7] + "…",
        expiresAt=token["expiresAt"],
    )
    return token


def render(report: dict[str, Any], *, color: bool) -> str:
    bold, dim, green, reset = ("\033[1m", "\033[2m", "\033[32m", "\033[0m") if color else ("",) * 4
    lines = [f"{bold}realtime-trio demo{reset} {dim}(offline, on the embedded simulator){reset}"]
    for step in report["timeline"]:
        details = {k: v for k, v in step.items() if k not in ("ms", "what")}
        lines.append(f"{dim}{step['ms']:>8.1f} ms{reset}  {step['what']}")
        for key, value in details.items():
            text = json.dumps(value) if not isinstance(value, str) else value
            lines.append(f"{'':13}{dim}{key}:{reset} {text}")
    lines.append(f"{green}ok{reset}: a client secret was minted through the server")
    return "\n".join(lines)


def main(*, as_json: bool = False) -> int:
    try:
        report = trio.run(run_demo)
    except DemoFailed as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        print(render(report, color=sys.stdout.isatty()))
    return 0
