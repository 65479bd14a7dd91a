"""A session record written for a shared store and read back is the same session."""

from __future__ import annotations

import json

import pytest

from realtime_trio._store import SessionRecord, record_from_json, record_to_json


def test_a_record_survives_the_trip_through_json() -> None:
    record = SessionRecord(
        session_id="s1",
        model="gpt-realtime",
        voice="marin",
        enable_transcription=True,
        base_instructions="Be brief.",
        call_id="rtc_1",
        client_secret="ek_secret",
        expires_at=1_800_000_000,
        profile={"first_name": "Ada", "income": 4200},
        history=["USER: hi"],
    )
    record.transcript.apply(
        {
            "type": "conversation.item.done",
            "previous_item_id": None,
            "item": {
                "id": "item_1",
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "My name is Ada."}],
            },
        }
    )
    record.answered_call_ids.add("call_1")

    back = record_from_json(
        json.loads(json.dumps(record_to_json(record))), transcript_max_items=None
    )

    assert record_to_json(back) == record_to_json(record)
    assert back.transcript.entries() == record.transcript.entries()
    assert "call_1" in back.answered_call_ids
    assert (back.session_id, back.call_id, back.profile) == ("s1", "rtc_1", record.profile)


def test_something_else_is_not_taken_for_a_record() -> None:
    with pytest.raises(ValueError, match="session record"):
        record_from_json({"sessionId": "s1"}, transcript_max_items=None)
