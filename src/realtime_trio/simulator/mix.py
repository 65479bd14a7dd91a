"""The conversation mix benchmarks send: voice turns as a WebRTC call's sideband sees them.

One turn, the user speaking then the model answering, is these server events (no audio deltas:
over WebRTC the audio plays on the media track):

    input_audio_buffer.speech_started, .speech_stopped, .committed
    conversation.item.added (user), conversation.item.input_audio_transcription.delta x ~4,
    ...completed, conversation.item.done (user)
    response.created, response.output_item.added, conversation.item.added (assistant),
    response.content_part.added, output_audio_buffer.started,
    response.output_audio_transcript.delta x ~30, ...done, response.content_part.done,
    response.output_item.done, conversation.item.done (assistant), output_audio_buffer.stopped,
    response.done (with usage), rate_limits.updated

Each turn has ids of its own (`item_`, `resp_`, `event_`) and chains by `previous_item_id` to
the turn before, so a consumer builds a coherent transcript. The events are wire-only: they
never enter the call's conversation model (`SimCall.items`), so a client that names one of
their items in a client event is told it does not exist.

Rendering hundreds of thousands of events must cost little, so a turn's events are built once
as dicts and kept as compact JSON text (`"type"` first, no spaces, as the API sends it) with
`%`-slots for the ids, times and the call's own values; `ConversationMix` checks one rendered
event of every kind against the SDK's server-event types when it is built.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, final

from .events import (
    assistant_item,
    chunks,
    content_part,
    rate_limits,
    realtime_response,
    response_usage,
    tokens,
    transcription_usage,
    user_audio_item,
)
from .sessions import DEFAULT_FORMAT, new_id
from .validation import check_server_event

USER_DELTAS = 4
ASSISTANT_DELTAS = 30
# What the user says and the model answers, turn after turn (a few words per delta).
DIALOGUE = (
    (
        "Hi, I ordered a pair of running shoes last week and they still have not arrived.",
        "I'm sorry to hear your shoes haven't arrived yet. I've looked up your order, and it "
        "shipped on Tuesday with our standard carrier. The tracking shows it reached your local "
        "depot this morning, so it should be out for delivery tomorrow. If it isn't with you by "
        "tomorrow evening, let me know and I can send a replacement pair right away or refund "
        "the shipping cost. Is there anything else about this order you'd like me to check for "
        "you, such as the delivery address or the size you picked?",
    ),
    (
        "Actually yes, can you make sure it goes to my office address instead of home?",
        "Of course. I can see two addresses on your account: your home on Maple Street and your "
        "office on Harbour Road. Since the parcel is already at the depot, I've asked the carrier "
        "to redirect it to Harbour Road, suite four hundred. They usually confirm a change like "
        "this within an hour, and you'll get a text message once it's done. Please keep in mind "
        "that office deliveries need someone at reception to sign for the parcel. Would you like "
        "me to add a note for the driver as well?",
    ),
    (
        "Yes please, tell them to leave it with the front desk if nobody answers.",
        "Done. I've added a note asking the driver to leave the parcel with the front desk if "
        "nobody answers at your suite. You'll find the note on the tracking page too, so you can "
        "change it yourself if your plans change. To sum up, your running shoes should arrive at "
        "your office tomorrow, and the carrier will text you when the redirect is confirmed. Is "
        "there anything else I can help you with today, or shall I send you a short summary of "
        "this conversation by email?",
    ),
)

Values = dict[str, str]  # a slot's name -> its JSON text (`event_base`: bare hex)
Picker = Callable[[Values], tuple[str, ...]]
_MARKER = re.compile(r'"@@(\w+)@@"')


def _slot(name: str) -> Any:
    return f"@@{name}@@"


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _event(type: str, **fields: Any) -> dict[str, Any]:
    return {"type": type, "event_id": _slot("event"), **fields}


def _turn_events(user_text: str, assistant_text: str) -> list[dict[str, Any]]:
    """One turn's events, with slot markers where per-turn and per-call values go."""
    user, assistant, response_id = _slot("user"), _slot("assistant"), _slot("response")
    previous = _slot("previous")
    heard = {"item_id": user, "content_index": 0}
    said = {"response_id": response_id, "item_id": assistant, "output_index": 0, "content_index": 0}
    final_item = assistant_item(
        assistant, modality="audio", text=assistant_text, status="completed"
    )

    def response(status: str, output: list[dict[str, Any]], usage: Any) -> dict[str, Any]:
        return realtime_response(
            response_id,
            status=status,
            output=output,
            conversation_id=_slot("conversation"),
            modality="audio",
            max_output_tokens=_slot("max_output_tokens"),
            metadata=None,
            audio=_slot("audio"),
            usage=usage,
        )

    usage = response_usage(420 + tokens(user_text), assistant_text, audio=True)
    return [
        _event("input_audio_buffer.speech_started", audio_start_ms=_slot("start_ms"), item_id=user),
        _event("input_audio_buffer.speech_stopped", audio_end_ms=_slot("end_ms"), item_id=user),
        _event("input_audio_buffer.committed", item_id=user, previous_item_id=previous),
        _event("conversation.item.added", item=user_audio_item(user), previous_item_id=previous),
        *(
            _event("conversation.item.input_audio_transcription.delta", **heard, delta=piece)
            for piece in chunks(user_text, USER_DELTAS)
        ),
        _event(
            "conversation.item.input_audio_transcription.completed",
            **heard,
            transcript=user_text,
            usage=transcription_usage(user_text),
        ),
        _event(
            "conversation.item.done",
            item=user_audio_item(user, user_text),
            previous_item_id=previous,
        ),
        _event("response.created", response=response("in_progress", [], None)),
        _event(
            "response.output_item.added",
            response_id=response_id,
            output_index=0,
            item=assistant_item(assistant, modality="audio", text=None, status="in_progress"),
        ),
        _event(
            "conversation.item.added",
            item=assistant_item(assistant, modality="audio", text=None, status="in_progress"),
            previous_item_id=user,
        ),
        _event("response.content_part.added", **said, part=content_part("audio", "")),
        _event("output_audio_buffer.started", response_id=response_id),
        *(
            _event("response.output_audio_transcript.delta", **said, delta=piece)
            for piece in chunks(assistant_text, ASSISTANT_DELTAS)
        ),
        _event("response.output_audio_transcript.done", **said, transcript=assistant_text),
        _event("response.content_part.done", **said, part=content_part("audio", assistant_text)),
        _event(
            "response.output_item.done", response_id=response_id, output_index=0, item=final_item
        ),
        _event("conversation.item.done", item=final_item, previous_item_id=user),
        _event("output_audio_buffer.stopped", response_id=response_id),
        _event("response.done", response=response("completed", [final_item], usage)),
        _event("rate_limits.updated", rate_limits=rate_limits()),
    ]


def _positional(event: dict[str, Any], index: int) -> tuple[str, list[str]]:
    """*event*, the *index*th of its turn, as compact JSON with a `%s` for each slot marker;
    and the slots' names in order. Its id is the turn's `event_base` and *index*, so that
    rendering a whole turn needs no value per event."""
    names: list[str] = []

    def positional(match: re.Match[str]) -> str:
        if match[1] == "event":
            names.append("event_base")
            return f'"event_%s{index:02x}"'
        names.append(match[1])
        return "%s"

    return _MARKER.sub(positional, _compact(event).replace("%", "%%")), names


def _picker(names: list[str]) -> Picker:
    pick = itemgetter(*names)
    return pick if len(names) > 1 else lambda values: (pick(values),)


@dataclass(frozen=True)
class _Turn:
    """A turn's events as templates one by one (`events`: each text and its picker of values),
    and all at once: `joined` has them separated by newlines (compact JSON has none)."""

    events: tuple[tuple[str, Picker], ...]
    joined: str
    joined_picker: Picker
    speech_ms: int
    reply_ms: int

    @classmethod
    def of(cls, user: str, assistant: str) -> _Turn:
        events = [_positional(e, i) for i, e in enumerate(_turn_events(user, assistant))]
        return cls(
            events=tuple((text, _picker(names)) for text, names in events),
            joined="\n".join(text for text, _ in events),
            joined_picker=_picker([name for _, names in events for name in names]),
            speech_ms=300 + 250 * len(user.split()),
            reply_ms=330 * len(assistant.split()),
        )


@final
class ConversationMix:
    """The turns of `DIALOGUE` as templates, each kind of event checked against the SDK once.

    Raises:
        AssertionError: a template renders an event the SDK's types refuse (a simulator bug).
    """

    def __init__(self) -> None:
        self.turns = tuple(_Turn.of(user, assistant) for user, assistant in DIALOGUE)
        self._check()

    def stream(
        self,
        *,
        conversation_id: str,
        session: dict[str, Any],
        previous_item_id: str | None = None,
    ) -> MixStream:
        """Endless turns for a call with *session*, its first turn after *previous_item_id*."""
        return MixStream(
            self,
            conversation_id=conversation_id,
            audio=response_audio(session),
            max_output_tokens=session.get("max_output_tokens", "inf"),
            previous_item_id=previous_item_id,
        )

    def _check(self) -> None:
        example = self.stream(conversation_id=new_id("conv"), session={})
        events = sum(len(turn.events) for turn in self.turns)
        bulk = self.stream(conversation_id=new_id("conv"), session={})
        checked: set[str] = set()
        for text, data in zip(example.texts(events), bulk.payloads(events), strict=True):
            event = json.loads(text)
            if json.loads(data).keys() != event.keys():
                raise AssertionError(f"{event['type']}: the turn's templates disagree")
            if event["type"] not in checked:
                check_server_event(event)
                checked.add(event["type"])


def response_audio(session: dict[str, Any]) -> dict[str, Any]:
    """The `audio` of a response on *session*, as `turns.start_response` reports it."""
    output = (session.get("audio") or {}).get("output") or {}
    return {
        "output": {
            "format": output.get("format", DEFAULT_FORMAT),
            "voice": output.get("voice", "alloy"),
        }
    }


@final
class MixStream:
    """One call's run of turns, each with fresh ids; rendered an event at a time (`texts`) or a
    turn at a time (`payloads`), the two interchangeable mid-run."""

    def __init__(
        self,
        mix: ConversationMix,
        *,
        conversation_id: str,
        audio: dict[str, Any],
        max_output_tokens: int | str,
        previous_item_id: str | None,
    ) -> None:
        self._mix = mix
        self._values = {
            "conversation": _compact(conversation_id),
            "audio": _compact(audio),
            "max_output_tokens": _compact(max_output_tokens),
        }
        self._previous = previous_item_id
        self._audio_ms = 0
        self._turns = 0
        self._turn = mix.turns[0]
        self._next = len(self._turn.events)  # as if a turn had just ended
        self._event_prefix = secrets.token_hex(6)

    def next_text(self) -> str:
        """The next event's JSON text."""
        if self._next == len(self._turn.events):
            self._start_turn()
        template, pick = self._turn.events[self._next]
        self._next += 1
        return template % pick(self._values)

    def texts(self, count: int) -> Iterator[str]:
        """The next *count* events' JSON texts (cut anywhere in a turn; the stream goes on)."""
        for _ in range(count):
            yield self.next_text()

    def payloads(self, count: int) -> Iterator[bytes]:
        """The next *count* events' JSON texts as UTF-8; whole turns are rendered in one go."""
        while count > 0:
            if self._next == len(self._turn.events):
                self._start_turn()
            turn = self._turn
            if self._next == 0 and count >= len(turn.events):
                self._next = len(turn.events)
                count -= len(turn.events)
                yield from (turn.joined % turn.joined_picker(self._values)).encode().split(b"\n")
            else:
                count -= 1
                yield self.next_text().encode()

    def _start_turn(self) -> None:
        turn = self._turn = self._mix.turns[self._turns % len(self._mix.turns)]
        user, assistant = new_id("item"), new_id("item")
        start_ms = self._audio_ms + 800
        end_ms = start_ms + turn.speech_ms
        self._audio_ms = end_ms + turn.reply_ms
        self._values.update(
            event_base=f"{self._event_prefix}{self._turns:010x}",
            user=f'"{user}"',  # ids need no escaping: cheaper than `_compact`
            assistant=f'"{assistant}"',
            response=f'"{new_id("resp")}"',
            previous="null" if self._previous is None else f'"{self._previous}"',
            start_ms=str(start_ms),
            end_ms=str(end_ms),
        )
        self._turns += 1
        self._previous = assistant
        self._next = 0
