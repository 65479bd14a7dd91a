"""Test helpers that play the app's part and drive the simulator, all over HTTP.

`SimControl` (the simulator's control API) is `realtime_trio.testing`'s, the one plugin authors
use; it is re-exported here for the tests that import it from this module.
"""

from __future__ import annotations

import socket
from typing import Any

import httpx
import trio

from realtime_trio.testing import SimControl

__all__ = [
    "FAST_RECONNECTS",
    "SimControl",
    "all_tasks",
    "closed_port",
    "live_session",
    "live_session_with_secret",
    "new_session",
    "open_sockets",
    "samples",
    "scrape",
    "session_state",
    "sockets_opened",
    "wait_for_sideband",
    "wait_until",
]

# Sideband reconnects within milliseconds, for tests that drop calls; each drop a new outage
# however soon it follows the last (they come much faster here than on a real network).
FAST_RECONNECTS = {
    "sideband_reconnect_backoff_seconds": 0.01,
    "sideband_reconnect_max_backoff_seconds": 0.05,
    "sideband_stable_seconds": 0,
}


async def wait_until(check: Any, *, seconds: float = 10.0) -> Any:
    """Poll an async *check* from outside until it returns something truthy (bounded)."""
    with trio.fail_after(seconds):
        while not (result := await check()):  # noqa: ASYNC110 - the state is only seen over HTTP
            await trio.sleep(0.02)
        return result


async def session_state(http: httpx.AsyncClient, session_id: str) -> dict[str, Any]:
    response = await http.get(f"/session/{session_id}")
    assert response.status_code == 200, response.text
    return response.json()


async def wait_for_sideband(
    http: httpx.AsyncClient, session_id: str, state: str, *, seconds: float = 10.0
) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        view = await session_state(http, session_id)
        return view if view["sideband"]["state"] == state else None

    return await wait_until(reached, seconds=seconds)


async def new_session(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/session", json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def live_session(client: httpx.AsyncClient, sim: SimControl, **body: Any) -> tuple[str, str]:
    """A session whose app has opened a call and reported it: (sessionId, callId)."""
    session_id, call_id, _ = await live_session_with_secret(client, sim, **body)
    return session_id, call_id


async def live_session_with_secret(
    client: httpx.AsyncClient, sim: SimControl, **body: Any
) -> tuple[str, str, str]:
    session = await new_session(client, **body)
    call_id = await sim.create_call(session["clientSecret"])
    attached = await client.post(
        "/session/call", json={"sessionId": session["sessionId"], "callId": call_id}
    )
    assert attached.status_code == 200, attached.text
    assert attached.json() == {
        "sessionId": session["sessionId"],
        "callId": call_id,
        "sideband": {"state": "connected"},
    }
    return session["sessionId"], call_id, session["clientSecret"]


def without_event_id(event: dict[str, Any]) -> dict[str, Any]:
    """A client event without the `event_id` the server gives every event it sends."""
    return {key: value for key, value in event.items() if key != "event_id"}


def open_sockets(call: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in call["sockets"] if s["open"]]


def closed_port() -> int:
    """A loopback port nothing listens on (an unreachable upstream)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def all_tasks() -> list[trio.lowlevel.Task]:
    """Every task running in this Trio run, found by walking the task tree from its root."""
    found, pending = [], [trio.lowlevel.current_root_task()]
    while pending:
        task = pending.pop()
        found.append(task)
        for nursery in task.child_nurseries:
            pending.extend(nursery.child_tasks)
    return found


async def sockets_opened(sim: SimControl, call_id: str, n: int) -> dict[str, Any] | None:
    """The call once *n* sockets have been opened on it and one is open (a reconnect made)."""
    call = await sim.call(call_id)
    return call if len(call["sockets"]) >= n and open_sockets(call) else None


# -- metrics ----------------------------------------------------------------------------------


def samples(text: str) -> dict[str, float]:
    """`name{labels}` -> value, for every sample of the exposition."""
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


async def scrape(client: httpx.AsyncClient) -> dict[str, float]:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)
