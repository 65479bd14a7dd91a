"""Where session state lives, behind one small interface.

Today sessions live in this process's memory. Several replicas will later share state through a
real store (Valkey/Redis), each sideband owned by one replica: that store implements the same
`SessionStore` methods, and nothing above this module needs to change.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from ._recent_ids import RecentIds
from ._transcript import Transcript
from ._usage import SessionUsage

# Call ids remembered per session to answer each once (a duplicate comes within one response).
CALL_IDS_REMEMBERED = 4096


@dataclass
class SessionRecord:
    """A session's durable state: what it was created with, its call, profile and transcript."""

    session_id: str
    model: str
    voice: str | None
    enable_transcription: bool
    base_instructions: str
    call_id: str | None = None
    client_secret: str | None = None
    expires_at: int | None = None
    profile: dict[str, Any] = field(default_factory=dict)
    transcript: Transcript = field(default_factory=Transcript)
    # The history the app was given at its last renew, carried in the instructions after it.
    history: list[str] | None = None
    # Function calls already taken, so each is answered exactly once.
    answered_call_ids: RecentIds = field(default_factory=lambda: RecentIds(CALL_IDS_REMEMBERED))
    created_at: float = field(default_factory=time.time)
    usage: SessionUsage = field(default_factory=SessionUsage)
    # When the current call was attached (wall clock, for `MAX_CALL_SECONDS` across replicas),
    # and why a cap ended it, if one did.
    call_started_at: float | None = None
    ended_by: str | None = None


def record_to_json(record: SessionRecord) -> dict[str, Any]:
    """*record* as a JSON-ready object, for a shared store (`record_from_json` reads it)."""
    return {
        "sessionId": record.session_id,
        "model": record.model,
        "voice": record.voice,
        "enableTranscription": record.enable_transcription,
        "baseInstructions": record.base_instructions,
        "callId": record.call_id,
        "clientSecret": record.client_secret,
        "expiresAt": record.expires_at,
        "profile": record.profile,
        "transcript": record.transcript.snapshot(),
        "history": record.history,
        "answeredCallIds": list(record.answered_call_ids),
        "createdAt": record.created_at,
        "usage": record.usage.snapshot(),
        "callStartedAt": record.call_started_at,
        "endedBy": record.ended_by,
    }


def record_from_json(data: dict[str, Any], *, transcript_max_items: int | None) -> SessionRecord:
    """The record `record_to_json` wrote.

    Raises:
        ValueError: *data* is not such a record.
    """
    try:
        answered = RecentIds(CALL_IDS_REMEMBERED)
        for call_id in data["answeredCallIds"]:
            answered.add(str(call_id))
        return SessionRecord(
            session_id=str(data["sessionId"]),
            model=str(data["model"]),
            voice=data["voice"],
            enable_transcription=bool(data["enableTranscription"]),
            base_instructions=str(data["baseInstructions"]),
            call_id=data["callId"],
            client_secret=data["clientSecret"],
            expires_at=data["expiresAt"],
            profile=dict(data["profile"]),
            transcript=Transcript.restore(data["transcript"], max_items=transcript_max_items),
            history=data["history"],
            answered_call_ids=answered,
            created_at=float(data["createdAt"]),
            usage=SessionUsage.restore(data.get("usage")),
            call_started_at=data.get("callStartedAt"),
            ended_by=data.get("endedBy"),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not a session record: {exc!r}") from None


class SessionStore(Protocol):
    """The session state interface; every method may block on I/O in a shared store."""

    async def add(self, record: SessionRecord) -> None: ...

    async def get(self, session_id: str) -> SessionRecord | None: ...

    async def save(self, record: SessionRecord) -> None: ...

    async def remove(self, session_id: str) -> SessionRecord | None: ...

    async def count(self) -> int: ...


class MemorySessionStore:
    """`SessionStore` in this process's memory."""

    def __init__(self) -> None:
        self._records: dict[str, SessionRecord] = {}

    async def add(self, record: SessionRecord) -> None:
        self._records[record.session_id] = record

    async def get(self, session_id: str) -> SessionRecord | None:
        return self._records.get(session_id)

    async def save(self, record: SessionRecord) -> None:
        self._records[record.session_id] = record

    async def remove(self, session_id: str) -> SessionRecord | None:
        return self._records.pop(session_id, None)

    async def count(self) -> int:
        return len(self._records)
