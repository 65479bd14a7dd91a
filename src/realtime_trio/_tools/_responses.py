"""The responses of one call's conversation, as far as the server must know them.

The API lets one response at a time write to the default conversation: a `response.create`
sent while one is in progress is refused (`conversation_already_has_active_response`), and voice
activity starts responses by itself (`turn_detection.create_response`), so the server's own
follow-ups can collide with the user's. `ResponseGate` follows the responses in progress (from
`response.created` and `response.done`, default conversation only) and the server's own
`response.create` not yet answered, and lets a new one out only when none is in progress; a
create refused all the same is sent again, once, after the next `response.done`.

It also knows which responses are out-of-band (`conversation: "none"`: a null
`conversation_id`): they are no part of the conversation, so their text and calls are ignored.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, final

import trio

from .._recent_ids import RecentIds

ACTIVE_RESPONSE = "conversation_already_has_active_response"
# Responses followed at once; one is normally in progress (more only if `response.done` was lost).
MAX_IN_PROGRESS = 64
OUT_OF_BAND_REMEMBERED = 256
# How long a `response.create` of ours counts as pending without a `response.created` or an
# `error` (it may have been lost with a dropped socket).
CREATE_PENDING_SECONDS = 10.0
# How long a create waits for the conversation to be free before it is sent all the same.
GATE_WAIT_SECONDS = 60.0

Send = Callable[[dict[str, Any]], Awaitable[bool]]


@final
class ResponseGate:
    """When the server may ask for a response on one session's calls.

    Args:
        nursery: where a refused create's retry runs (the session's).
    """

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self._in_progress: dict[str, None] = {}
        self._out_of_band = RecentIds(OUT_OF_BAND_REMEMBERED)
        self._pending: tuple[str, float] | None = None  # our create: event_id, when sent
        self._free = trio.Event()
        self._free.set()
        self._ids = itertools.count(1)
        self._id_prefix = f"rt_create_{secrets.token_hex(3)}_"
        # Our creates, by event_id: how to send them again if refused (None: already retried).
        self._sent: dict[str, Send | None] = {}
        self._retry_after_done: list[Send] = []

    # -- what the conversation says -------------------------------------------------------

    def on_created(self, response: dict[str, Any]) -> None:
        response_id = response.get("id")
        if not isinstance(response_id, str):
            return
        self._pending = None  # ours was taken (or refused: its error follows)
        if "conversation_id" in response and response["conversation_id"] is None:
            self._out_of_band.add(response_id)
            return
        self._in_progress[response_id] = None
        if len(self._in_progress) > MAX_IN_PROGRESS:
            del self._in_progress[next(iter(self._in_progress))]
        self._update()

    def on_done(self, response: dict[str, Any]) -> None:
        response_id = response.get("id")
        if isinstance(response_id, str):
            self._in_progress.pop(response_id, None)
        self._update()
        retries, self._retry_after_done = self._retry_after_done, []
        for send in retries:
            self._nursery.start_soon(self._create_when_free, send, None)

    def on_error(self, error: dict[str, Any]) -> None:
        """An `error` event: a create of ours refused because a response was in progress is
        sent again after the next `response.done`, once."""
        event_id = error.get("event_id")
        if not isinstance(event_id, str) or event_id not in self._sent:
            return
        if self._pending is not None and self._pending[0] == event_id:
            self._pending = None
        send = self._sent.pop(event_id)
        if error.get("code") == ACTIVE_RESPONSE and send is not None:
            self._retry_after_done.append(send)
        self._update()

    def forget_in_progress(self) -> None:
        """After a reconnect: the `response.done`s of the gap are lost, so start afresh (a
        create refused because one is still in progress is retried)."""
        self._in_progress.clear()
        self._pending = None
        self._update()

    def out_of_band(self, response_id: object) -> bool:
        """Whether *response_id* names an out-of-band response (not in the conversation)."""
        return isinstance(response_id, str) and response_id in self._out_of_band

    # -- asking for a response ----------------------------------------------------------------

    def busy(self) -> bool:
        """Whether a response is in progress, or one of ours is on its way."""
        pending = self._pending
        if pending is not None and trio.current_time() - pending[1] > CREATE_PENDING_SECONDS:
            self._pending = pending = None
        return bool(self._in_progress) or pending is not None

    def claim(self, send: Send) -> dict[str, Any]:
        """A `response.create` to send now (the conversation is free: check `busy` first), with
        its `event_id`; the gate counts it as pending until it is answered."""
        event_id = f"{self._id_prefix}{next(self._ids)}"
        self._pending = (event_id, trio.current_time())
        self._sent[event_id] = send
        if len(self._sent) > MAX_IN_PROGRESS:
            del self._sent[next(iter(self._sent))]
        self._update()
        return {"type": "response.create", "event_id": event_id}

    def unclaim(self, event: dict[str, Any]) -> None:
        """*event* (from `claim`) could not be sent."""
        if self._pending is not None and self._pending[0] == event.get("event_id"):
            self._pending = None
        self._sent.pop(str(event.get("event_id")), None)
        self._update()

    async def create_when_free(self, send: Send) -> bool:
        """Send a `response.create` with *send* once no response is in progress (waiting at most
        `GATE_WAIT_SECONDS`); whether it went out."""
        return await self._create_when_free(send, send)

    async def _create_when_free(self, send: Send, retry: Send | None) -> bool:
        with trio.move_on_after(GATE_WAIT_SECONDS):
            while self.busy():
                # Bounded: a pending create of ours may lapse without an event saying so.
                with trio.move_on_after(CREATE_PENDING_SECONDS):
                    await self._free.wait()
        event = self.claim(send)
        self._sent[event["event_id"]] = retry  # None: a retry is not retried again
        if await send(event):
            return True
        self.unclaim(event)
        return False

    def _update(self) -> None:
        if self.busy():
            if self._free.is_set():
                self._free = trio.Event()
        else:
            self._free.set()
