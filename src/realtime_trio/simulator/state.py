"""What the simulator remembers: its API keys, the secrets it minted, what it was sent, the calls
it holds (each lasting at most `max_call_seconds`), and faults a test asked it to inject
(`responses` also arms failures of the Responses API's answers). One `SimulatorState` per
simulator; tests may read it directly (and drive its calls: see `SimCall`)."""

from __future__ import annotations

import copy
import math
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from .._fresh_tasks import start_fresh
from .calls import DEFAULT_MAX_CALL_SECONDS, SimCall
from .responses import ArmedResponses
from .sessions import new_id

DEFAULT_API_KEY = "sk-simulator-key"
RECORDED_REQUESTS_KEPT = 10_000


@dataclass(frozen=True)
class MintedSecret:
    value: str
    expires_at: int
    session: dict[str, Any]


@dataclass
class RecordedRequest:
    """One request as it crossed the wire (the authorization header reduced to its first chars).

    `received_at` and `answered_at` (`time.monotonic()`, comparable across processes on one
    machine) bound the simulator's own time on it, which benchmarks subtract from round trips.
    """

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any
    received_at: float = field(default_factory=time.monotonic)
    answered_at: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body": self.body,
            "receivedAt": self.received_at,
            "answeredAt": self.answered_at,
        }


@dataclass
class Fault:
    """Make the next `times` requests to `path` wait `delay_seconds`, then answer `status`.

    With no `status` the request is served normally after the delay.
    """

    path: str
    status: int | None = None
    delay_seconds: float = 0.0
    times: int = 1
    error: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


class SimulatorState:
    """The simulator's memory.

    Args:
        api_keys: the standard keys it accepts.
        clock: wall-clock seconds, injectable so tests can age secrets.
        max_call_seconds: how long a call lasts at most: that long after it was created it
            expires as the API ends a session (`SimCall.expire`); the API's 60 minutes by
            default.

    Raises:
        ValueError: *max_call_seconds* is not a positive, finite number.
    """

    def __init__(
        self,
        *,
        api_keys: tuple[str, ...] = (DEFAULT_API_KEY,),
        clock: Callable[[], float] = time.time,
        max_call_seconds: float = DEFAULT_MAX_CALL_SECONDS,
    ) -> None:
        if not (math.isfinite(max_call_seconds) and max_call_seconds > 0):
            raise ValueError(f"max_call_seconds must be positive and finite: {max_call_seconds}")
        self.api_keys = set(api_keys)
        self.clock = clock
        self.max_call_seconds = max_call_seconds
        self.secrets: dict[str, MintedSecret] = {}
        self.requests: deque[RecordedRequest] = deque(maxlen=RECORDED_REQUESTS_KEPT)
        self.faults: list[Fault] = []
        self.calls: dict[str, SimCall] = {}
        self.responses = ArmedResponses()
        self._calls_nursery: trio.Nursery | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the calls' tasks (each call's nursery) while the simulator serves.

        The app starts it when it starts serving and `stop()`s it when it stops.
        """
        try:
            async with trio.open_nursery() as nursery:
                self._calls_nursery = nursery
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._calls_nursery = None

    def stop(self) -> None:
        """Cancel `run`, and with it whatever every call was still doing."""
        if self._calls_nursery is not None:
            self._calls_nursery.cancel_scope.cancel()

    async def open_call(self, session: dict[str, Any], *, secret: str | None = None) -> SimCall:
        """A new call (`rtc_...`) on *session* (copied), its nursery started under `run`.

        Raises:
            RuntimeError: the simulator is not serving (`run` is not running).
        """
        if self._calls_nursery is None:
            raise RuntimeError("the simulator's calls are not running (is the app serving?)")
        call = SimCall(
            new_id("rtc"),
            copy.deepcopy(session),
            secret=secret,
            clock=self.clock,
            max_seconds=self.max_call_seconds,
        )
        # A fresh context: the call outlives the request that made it (see fresh_tasks).
        await start_fresh(self._calls_nursery, call.run)
        self.calls[call.call_id] = call
        return call

    def is_api_key(self, key: str) -> bool:
        return any(secrets.compare_digest(key, known) for known in self.api_keys)

    def mint_secret(self, session: dict[str, Any], ttl_seconds: int) -> MintedSecret:
        now = self.clock()
        self._forget_expired(now)
        minted = MintedSecret(
            value="ek_" + secrets.token_hex(16), expires_at=int(now) + ttl_seconds, session=session
        )
        self.secrets[minted.value] = minted
        return minted

    def live_secret(self, value: str) -> MintedSecret | None:
        """The minted secret *value*, unless unknown or expired."""
        minted = self.secrets.get(value)
        if minted is None or minted.expires_at <= self.clock():
            return None
        return minted

    def record(self, request: RecordedRequest) -> None:
        self.requests.append(request)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    def take_fault(self, path: str) -> Fault | None:
        """The first fault armed for *path*, counting this use of it."""
        for fault in self.faults:
            if fault.path == path and fault.times > 0:
                fault.times -= 1
                if fault.times == 0:
                    self.faults.remove(fault)
                return fault
        return None

    def _forget_expired(self, now: float) -> None:
        expired = [value for value, s in self.secrets.items() if s.expires_at <= now]
        for value in expired:
            del self.secrets[value]
