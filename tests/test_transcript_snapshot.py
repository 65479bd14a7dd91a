"""A transcript carried elsewhere (a shared store, another replica after a takeover) goes on
exactly as the original would: for generated conversations, cut at any point, snapshotted
through JSON and restored, the two give the same turns in the same order for every event that
follows, through inserts, deletions, truncations, late transcriptions and dropped items."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime_trio._transcript import Transcript

ROLES = st.sampled_from(["user", "assistant"])
TEXTS = st.sampled_from(["", "hello", "my name is Ada", "ok", "ünïcode ✓"])


@st.composite
def conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Server events of one conversation, some of them about items not seen (yet)."""
    events: list[dict[str, Any]] = []
    ids: list[str] = []
    for _ in range(draw(st.integers(1, 30))):
        kind = draw(
            st.sampled_from(
                [
                    "add",
                    "add",
                    "add",
                    "commit",
                    "transcribed",
                    "failed",
                    "done",
                    "truncate",
                    "delete",
                ]
            )
        )
        if kind in ("add", "commit") or not ids:
            item_id = f"item_{len(ids)}"
            previous = draw(st.sampled_from([None, "last", "earlier", "unseen"]))
            prev: str | None
            if previous == "last" and ids:
                prev = ids[-1]
            elif previous == "earlier" and ids:
                prev = draw(st.sampled_from(ids))
            elif previous == "unseen":
                prev = f"item_{len(ids) + 1}"  # the next item, added later
            else:
                prev = None
            ids.append(item_id)
            if kind == "commit":
                events.append(
                    {
                        "type": "input_audio_buffer.committed",
                        "item_id": item_id,
                        "previous_item_id": prev,
                    }
                )
                continue
            role = draw(ROLES)
            text = draw(TEXTS)
            content = [{"type": "input_text" if role == "user" else "output_text", "text": text}]
            events.append(
                {
                    "type": draw(
                        st.sampled_from(["conversation.item.added", "conversation.item.done"])
                    ),
                    "previous_item_id": prev,
                    "item": {
                        "id": item_id,
                        "type": "message",
                        "role": role,
                        "status": draw(st.sampled_from(["in_progress", "completed"])),
                        "content": content if text else [],
                    },
                }
            )
            continue
        item_id = draw(st.sampled_from(ids))
        if kind == "transcribed":
            events.append(
                {
                    "type": "conversation.item.input_audio_transcription.completed",
                    "item_id": item_id,
                    "transcript": draw(TEXTS),
                }
            )
        elif kind == "failed":
            events.append(
                {"type": "conversation.item.input_audio_transcription.failed", "item_id": item_id}
            )
        elif kind == "done":
            events.append(
                {
                    "type": "response.output_audio_transcript.done",
                    "item_id": item_id,
                    "transcript": draw(TEXTS),
                }
            )
        elif kind == "truncate":
            events.append(
                {
                    "type": "conversation.item.truncated",
                    "item_id": item_id,
                    "audio_end_ms": draw(st.integers(0, 5000)),
                }
            )
        else:
            events.append({"type": "conversation.item.deleted", "item_id": item_id})
    return events


def same(a: Transcript, b: Transcript) -> None:
    assert b.entries() == a.entries()
    assert len(b) == len(a)
    assert b.dropped_entries == a.dropped_entries
    assert b.history_lines() == a.history_lines()
    for n in range(40):
        assert b.knows(f"item_{n}") == a.knows(f"item_{n}")


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    events=conversations(),
    cut=st.floats(0, 1),
    max_items=st.sampled_from([None, 4, 8]),
)
def test_a_restored_transcript_goes_on_as_the_original(
    events: list[dict[str, Any]], cut: float, max_items: int | None
) -> None:
    at = round(cut * len(events))
    original = Transcript(max_items=max_items)
    for event in events[:at]:
        original.apply(event)

    stored = json.loads(json.dumps(original.snapshot()))
    restored = Transcript.restore(stored, max_items=max_items)
    same(original, restored)

    for event in events[at:]:
        assert restored.apply(event) == original.apply(event)
        same(original, restored)


@pytest.mark.parametrize(
    "snapshot",
    [{}, {"items": [{"id": "a"}], "gone": [], "droppedEntries": 0}, {"items": 3}],
)
def test_something_else_is_not_taken_for_a_snapshot(snapshot: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="snapshot"):
        Transcript.restore(snapshot)
