"""The transcript follows the conversation's item order, whatever order the events arrive in."""

from __future__ import annotations

import random
from typing import Any

import pytest

from realtime_trio._transcript import Transcript


def user_committed(item_id: str, prev: str | None) -> list[dict[str, Any]]:
    item = {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "role": "user",
        "status": "completed",
        "content": [{"type": "input_audio", "transcript": None}],
    }
    return [
        {"type": "input_audio_buffer.committed", "item_id": item_id, "previous_item_id": prev},
        {"type": "conversation.item.added", "item": item, "previous_item_id": prev},
        {"type": "conversation.item.done", "item": item, "previous_item_id": prev},
    ]


def transcribed(item_id: str, text: str) -> list[dict[str, Any]]:
    return [
        {
            "type": "conversation.item.input_audio_transcription.delta",
            "item_id": item_id,
            "delta": text[:3],
        },
        {
            "type": "conversation.item.input_audio_transcription.completed",
            "item_id": item_id,
            "content_index": 0,
            "transcript": text,
        },
    ]


def assistant_says(
    item_id: str,
    prev: str | None,
    text: str,
    *,
    done_type: str = "response.output_audio_transcript.done",
) -> list[dict[str, Any]]:
    started = {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "role": "assistant",
        "status": "in_progress",
        "content": [],
    }
    finished = {
        **started,
        "status": "completed",
        "content": [{"type": "output_audio", "transcript": text}],
    }
    return [
        {"type": "conversation.item.added", "item": started, "previous_item_id": prev},
        {"type": "response.output_audio_transcript.delta", "item_id": item_id, "delta": text[:4]},
        {"type": done_type, "item_id": item_id, "transcript": text, "text": text},
        {"type": "conversation.item.done", "item": finished, "previous_item_id": prev},
    ]


def play(*groups: list[dict[str, Any]]) -> Transcript:
    transcript = Transcript()
    for group in groups:
        for event in group:
            transcript.apply(event)
    return transcript


def turns(transcript: Transcript) -> list[tuple[str, str, str]]:
    return [(e.role, e.text, e.status) for e in transcript.entries()]


def test_a_late_transcription_fills_its_turn_in_place() -> None:
    transcript = play(
        user_committed("u1", None),
        assistant_says("a1", "u1", "Hello! What is your name?"),
        transcribed("u1", "Hi there."),  # lands after the reply, as it often does
        user_committed("u2", "a1"),
        assistant_says("a2", "u2", "Nice to meet you, Ada."),
        transcribed("u2", "I am Ada."),
    )

    assert turns(transcript) == [
        ("user", "Hi there.", "complete"),
        ("assistant", "Hello! What is your name?", "complete"),
        ("user", "I am Ada.", "complete"),
        ("assistant", "Nice to meet you, Ada.", "complete"),
    ]
    assert transcript.history_lines() == [
        "USER: Hi there.",
        "ASSISTANT: Hello! What is your name?",
        "USER: I am Ada.",
        "ASSISTANT: Nice to meet you, Ada.",
    ]


def test_a_pending_transcription_shows_as_a_pending_turn() -> None:
    transcript = play(user_committed("u1", None), assistant_says("a1", "u1", "Sorry?"))

    assert turns(transcript) == [("user", "", "pending"), ("assistant", "Sorry?", "complete")]
    assert transcript.history_lines() == ["ASSISTANT: Sorry?"]


def test_a_failed_transcription_leaves_an_empty_marked_turn() -> None:
    transcript = play(
        user_committed("u1", None),
        [
            {
                "type": "conversation.item.input_audio_transcription.failed",
                "item_id": "u1",
                "content_index": 0,
                "error": {"type": "server_error", "message": "boom"},
            }
        ],
        assistant_says("a1", "u1", "Could you repeat that?"),
    )

    assert turns(transcript) == [
        ("user", "", "failed"),
        ("assistant", "Could you repeat that?", "complete"),
    ]


def test_typed_user_text_and_beta_event_names_are_captured() -> None:
    typed = {
        "id": "u1",
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "What time is it?"}],
    }
    transcript = play(
        [{"type": "conversation.item.added", "item": typed, "previous_item_id": None}],
        assistant_says("a1", "u1", "It is noon.", done_type="response.audio_transcript.done"),
        assistant_says("a2", "a1", "Anything else?", done_type="response.text.done"),
    )

    assert turns(transcript) == [
        ("user", "What time is it?", "complete"),
        ("assistant", "It is noon.", "complete"),
        ("assistant", "Anything else?", "complete"),
    ]


def test_tool_items_and_system_messages_keep_their_place_but_are_not_turns() -> None:
    call = {
        "id": "f1",
        "type": "function_call",
        "name": "extract_profile",
        "call_id": "c1",
        "arguments": "{}",
    }
    output = {"id": "o1", "type": "function_call_output", "call_id": "c1", "output": "{}"}
    note = {
        "id": "s1",
        "type": "message",
        "role": "system",
        "content": [{"type": "input_text", "text": "x"}],
    }
    transcript = play(
        user_committed("u1", None),
        transcribed("u1", "My name is Ada."),
        [{"type": "conversation.item.added", "item": call, "previous_item_id": "u1"}],
        [{"type": "conversation.item.added", "item": output, "previous_item_id": "f1"}],
        [{"type": "conversation.item.added", "item": note, "previous_item_id": "o1"}],
        assistant_says("a1", "s1", "Thanks, Ada."),
    )

    assert turns(transcript) == [
        ("user", "My name is Ada.", "complete"),
        ("assistant", "Thanks, Ada.", "complete"),
    ]


def test_deleting_an_item_keeps_the_rest_in_order() -> None:
    transcript = play(
        user_committed("u1", None),
        transcribed("u1", "One."),
        assistant_says("a1", "u1", "Two."),
        user_committed("u2", "a1"),
        transcribed("u2", "Three."),
        [{"type": "conversation.item.deleted", "item_id": "a1"}],
    )

    assert [text for _, text, _ in turns(transcript)] == ["One.", "Three."]


def test_an_item_inserted_after_another_sits_directly_after_it() -> None:
    typed = {
        "id": "x1",
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "Inserted."}],
    }
    transcript = play(
        user_committed("u1", None),
        transcribed("u1", "First."),
        assistant_says("a1", "u1", "Second."),
        [{"type": "conversation.item.added", "item": typed, "previous_item_id": "u1"}],
    )

    assert [text for _, text, _ in turns(transcript)] == ["First.", "Inserted.", "Second."]


def test_a_second_call_continues_after_the_first() -> None:
    transcript = play(
        user_committed("u1", None),
        transcribed("u1", "Before renew."),
        user_committed("v1", None),  # the new call's conversation starts empty
        transcribed("v1", "After renew."),
    )

    assert [text for _, text, _ in turns(transcript)] == ["Before renew.", "After renew."]


def test_events_for_other_things_are_ignored() -> None:
    transcript = Transcript()

    assert transcript.apply({"type": "rate_limits.updated", "rate_limits": []}) is False
    assert transcript.apply({"type": "conversation.item.added", "item": "nonsense"}) is False
    assert (
        transcript.apply({"type": "conversation.item.input_audio_transcription.completed"}) is False
    )
    assert transcript.entries() == []


@pytest.mark.parametrize("max_items", [None, 3, 7, 20])
def test_the_order_kept_up_to_date_matches_the_order_rebuilt_from_scratch(
    max_items: int | None,
) -> None:
    """The cached order (appends in the common case) never drifts from a full rebuild, with or
    without the cap dropping the oldest items.

    Random conversations: mostly each item after the last, sometimes an insert after an older
    item, a previous id not seen yet, a transcription arriving before its item, a deletion.
    """
    rng = random.Random(1234)
    for _ in range(200):
        transcript, ids = Transcript(max_items=max_items), []
        for step in range(rng.randint(1, 30)):
            item_id = f"item_{step}"
            roll = rng.random()
            if roll < 0.1 and ids:
                transcript.apply(
                    {
                        "type": "conversation.item.deleted",
                        "item_id": ids.pop(rng.randrange(len(ids))),
                    }
                )
                continue
            if roll < 0.2:
                prev = f"item_{step + rng.randint(1, 3)}"  # an item announced later
            elif roll < 0.35 and ids:
                prev = rng.choice(ids)
            else:
                prev = ids[-1] if ids else None
            if rng.random() < 0.3:  # its transcription, before the item itself
                transcript.apply(transcribed(item_id, f"words {step}")[0])
            events = user_committed(item_id, prev)
            for event in events[rng.randint(0, 1) :]:
                transcript.apply(event)
            ids.append(item_id)
            kept = transcript.entries()
            rebuilt = Transcript.__new__(Transcript)
            rebuilt.__dict__.update(transcript.__dict__, _order=None, _ordered_entries=None)
            assert kept == rebuilt.entries()
            if max_items is not None:
                assert len(transcript) <= max_items


def test_beyond_the_cap_the_oldest_turns_go_first_and_are_counted() -> None:
    said = [f"Turn {n}." for n in range(12)]
    transcript = Transcript(max_items=10)
    previous = None
    for n, text in enumerate(said):
        for event in [*user_committed(f"u{n}", previous), *transcribed(f"u{n}", text)]:
            transcript.apply(event)
        previous = f"u{n}"

    kept = [text for _, text, _ in turns(transcript)]
    # Over the cap, a tenth of it goes at once: 11 items held -> 9 kept; then 10.
    assert kept == said[2:]
    assert transcript.dropped_entries == 2


def test_dropping_keeps_the_order_of_what_is_left_and_ignores_late_news_of_the_dropped() -> None:
    typed = {
        "id": "x1",
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "Inserted after One."}],
    }
    transcript = Transcript(max_items=3)
    for event in [
        *user_committed("u1", None),
        *transcribed("u1", "One."),
        *assistant_says("a1", "u1", "Two."),
        {"type": "conversation.item.added", "item": typed, "previous_item_id": "u1"},
        *user_committed("u2", "a1"),  # a fourth item: u1 goes
        *transcribed("u1", "One, again."),  # late news of a dropped item brings nothing back
    ]:
        transcript.apply(event)

    assert [text for _, text, _ in turns(transcript)] == ["Inserted after One.", "Two.", ""]
    assert transcript.dropped_entries == 1
