"""The conversation's transcript, in conversation order rather than arrival order.

Input transcription runs on a separate model and often completes after the assistant has
started answering, so entries are placed by the conversation's own item order
(`previous_item_id`) and a user turn's text is filled in place when its transcription lands.
See section 8 of the protocol reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import count
from typing import Any, Literal

Role = Literal["user", "assistant"]
Status = Literal["pending", "complete", "failed"]

_USER_TEXT = ("input_text", "text")
_ASSISTANT_TEXT = ("output_text", "output_audio", "text", "audio")

# Assistant text, by event type (GA names first, then the beta-era ones still seen).
_ASSISTANT_DELTAS = {
    "response.output_audio_transcript.delta",
    "response.output_text.delta",
    "response.audio_transcript.delta",
    "response.text.delta",
}
_ASSISTANT_DONES = {
    "response.output_audio_transcript.done": "transcript",
    "response.audio_transcript.done": "transcript",
    "response.output_text.done": "text",
    "response.text.done": "text",
}
_ITEM_EVENTS = {"conversation.item.added", "conversation.item.created", "conversation.item.done"}


@dataclass(frozen=True)
class TranscriptEntry:
    item_id: str
    role: Role
    text: str
    status: Status

    def as_json(self) -> dict[str, Any]:
        return {"itemId": self.item_id, "role": self.role, "text": self.text, "status": self.status}


@dataclass
class _Item:
    item_id: str
    seq: int
    prev: str | None = None
    role: str | None = None
    kind: str | None = None
    text: str = ""
    status: Status = "pending"


class Transcript:
    """Builds the transcript from server events; `apply` is cheap and never blocks."""

    def __init__(self) -> None:
        self._items: dict[str, _Item] = {}
        self._arrivals = count()
        self._finalized: list[str] = []

    def apply(self, event: dict[str, Any]) -> bool:
        """Take one server event into account; True when it was about the conversation."""
        kind = event.get("type")
        if kind in _ITEM_EVENTS:
            item = event.get("item")
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                self._on_item(item, event)
                return True
        elif kind == "input_audio_buffer.committed":
            node = self._node(event.get("item_id"))
            if node is not None:
                node.role, node.kind = "user", "message"
                if "previous_item_id" in event:
                    node.prev = event["previous_item_id"]
                return True
        elif kind == "conversation.item.input_audio_transcription.delta":
            node = self._node(event.get("item_id"))
            if node is not None and node.status == "pending":
                node.role = node.role or "user"
                node.text += str(event.get("delta") or "")
                return True
        elif kind == "conversation.item.input_audio_transcription.completed":
            node = self._node(event.get("item_id"))
            if node is not None:
                node.role = node.role or "user"
                node.text, node.status = str(event.get("transcript") or ""), "complete"
                self._finalized.append(node.item_id)
                return True
        elif kind == "conversation.item.input_audio_transcription.failed":
            node = self._node(event.get("item_id"))
            if node is not None:
                node.role = node.role or "user"
                node.text, node.status = "", "failed"
                self._finalized.append(node.item_id)
                return True
        elif kind in _ASSISTANT_DELTAS:
            node = self._node(event.get("item_id"))
            if node is not None and node.status == "pending":
                node.role = node.role or "assistant"
                node.text += str(event.get("delta") or "")
                return True
        elif kind in _ASSISTANT_DONES:
            node = self._node(event.get("item_id"))
            if node is not None:
                node.role = node.role or "assistant"
                if node.status != "complete":
                    self._finalized.append(node.item_id)
                node.text, node.status = str(event.get(_ASSISTANT_DONES[kind]) or ""), "complete"
                return True
        elif kind == "conversation.item.deleted":
            self._delete(event.get("item_id"))
            return True
        return False

    def entries(self) -> list[TranscriptEntry]:
        """User and assistant turns, in conversation order."""
        return [entry for node in self._ordered() if (entry := _entry(node)) is not None]

    def take_finalized(self) -> list[TranscriptEntry]:
        """Turns whose text became final (or whose transcription failed) since the last call."""
        ids, self._finalized = self._finalized, []
        # Read off the items themselves: ordering the whole conversation is not needed here,
        # on the sideband's receive path.
        nodes = (self._items.get(item_id) for item_id in dict.fromkeys(ids))
        return [entry for node in nodes if node is not None and (entry := _entry(node)) is not None]

    def pending_user_turns(self) -> int:
        """User turns whose transcription has not completed (nor failed) yet."""
        return sum(1 for e in self.entries() if e.role == "user" and e.status == "pending")

    def history_lines(self) -> list[str]:
        """`USER: ...` / `ASSISTANT: ...` lines of the turns that have text, for rehydration."""
        return [f"{e.role.upper()}: {e.text}" for e in self.entries() if e.text]

    def __len__(self) -> int:
        return len(self._items)

    def _node(self, item_id: object) -> _Item | None:
        if not isinstance(item_id, str) or not item_id:
            return None
        node = self._items.get(item_id)
        if node is None:
            node = self._items[item_id] = _Item(item_id, seq=next(self._arrivals))
        return node

    def _on_item(self, item: dict[str, Any], event: dict[str, Any]) -> None:
        node = self._node(item["id"])
        if node is None:
            return
        if "previous_item_id" in event:
            node.prev = event["previous_item_id"]
        node.kind = item.get("type") or node.kind
        node.role = item.get("role") or node.role
        if node.kind != "message" or node.status != "pending":
            return
        text = _content_text(item.get("content"), node.role)
        if text:
            node.text = text
            if node.role == "user" or item.get("status") == "completed":
                node.status = "complete"
                self._finalized.append(node.item_id)

    def _delete(self, item_id: object) -> None:
        if not isinstance(item_id, str) or item_id not in self._items:
            return
        gone = self._items.pop(item_id)
        for node in self._items.values():
            if node.prev == item_id:
                node.prev = gone.prev

    def _ordered(self) -> list[_Item]:
        """Walk the item list from its roots; a later insert after X sits directly after X."""
        children: dict[str | None, list[_Item]] = {}
        for node in self._items.values():
            parent = node.prev if node.prev in self._items else None
            children.setdefault(parent, []).append(node)
        for parent, siblings in children.items():
            # Roots in arrival order; among inserts after one item, the latest comes first.
            siblings.sort(key=lambda n: n.seq, reverse=parent is not None)
        ordered: list[_Item] = []
        stack = list(reversed(children.get(None, [])))
        while stack:
            node = stack.pop()
            ordered.append(node)
            stack.extend(reversed(children.get(node.item_id, [])))
        return ordered


def _entry(node: _Item) -> TranscriptEntry | None:
    """The turn an item is, if it is a user or assistant message."""
    if node.kind not in (None, "message") or node.role not in ("user", "assistant"):
        return None
    return TranscriptEntry(node.item_id, node.role, node.text, node.status)  # type: ignore[arg-type]


def _content_text(content: object, role: str | None) -> str:
    """The text a message item carries already: typed text, or a finished transcript."""
    if not isinstance(content, list):
        return ""
    wanted = _USER_TEXT if role == "user" else _ASSISTANT_TEXT
    parts = []
    for part in content:
        if not isinstance(part, dict):
            continue
        if part.get("type") in wanted or (role == "user" and part.get("type") == "input_audio"):
            value = part.get("text") or part.get("transcript")
            if isinstance(value, str):
                parts.append(value)
    return "".join(parts)
