"""The conversation's transcript, in conversation order rather than arrival order.

Input transcription runs on a separate model and often completes after the assistant has
started answering, so entries are placed by the conversation's own item order
(`previous_item_id`) and a user turn's text is filled in place when its transcription lands.
See section 8 of the protocol reference.

When the user barges in, the API truncates the assistant's unplayed audio
(`conversation.item.truncated`) and deletes the text the user never heard from the model's
context. The entry keeps the text the server was given and says it was cut (`truncated`,
`audioEndMs`): how much of it was heard is not knowable from the events.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import count
from typing import Any, Literal

from ._recent_ids import RecentIds

Role = Literal["user", "assistant"]
Status = Literal["pending", "complete", "failed"]

_USER_TEXT = ("input_text", "text")
_ASSISTANT_TEXT = ("output_text", "output_audio", "text", "audio")

# Assistant text, by event type (GA names first, then the beta-era ones still seen). Only final
# text is kept: deltas (most of a call's events) are never parsed, and each `.done` (or the
# finished item) carries the whole text.
_ASSISTANT_DONES = {
    "response.output_audio_transcript.done": "transcript",
    "response.audio_transcript.done": "transcript",
    "response.output_text.done": "text",
    "response.text.done": "text",
}
_ITEM_EVENTS = {
    "conversation.item.added",
    "conversation.item.created",
    "conversation.item.done",
    "conversation.item.retrieved",  # asked for after a reconnect: the item as it stands
}
# Every event type `Transcript.apply` looks at: the sideband parses only what its host wants.
TRANSCRIPT_EVENT_TYPES = frozenset(
    {
        *_ITEM_EVENTS,
        *_ASSISTANT_DONES,
        "input_audio_buffer.committed",
        "conversation.item.input_audio_transcription.completed",
        "conversation.item.input_audio_transcription.failed",
        "conversation.item.deleted",
        "conversation.item.truncated",
    }
)


@dataclass(frozen=True)
class TranscriptEntry:
    """One turn of the conversation: who spoke, what was said, and whether it is final
    (`pending` until its text is, `failed` when the user's transcription failed)."""

    item_id: str
    role: Role
    text: str
    status: Status
    # Where the user cut the assistant's audio off (milliseconds into it), if they did.
    audio_end_ms: int | None = None

    @property
    def truncated(self) -> bool:
        """Whether the user interrupted this turn before its audio finished playing."""
        return self.audio_end_ms is not None

    def as_json(self) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "itemId": self.item_id,
            "role": self.role,
            "text": self.text,
            "status": self.status,
        }
        if self.audio_end_ms is not None:
            answer["truncated"] = True
            answer["audioEndMs"] = self.audio_end_ms
        return answer


@dataclass
class _Item:
    item_id: str
    seq: int
    prev: str | None = None
    role: str | None = None
    kind: str | None = None
    status: Status = "pending"
    text: str = ""
    audio_end_ms: int | None = None  # truncated by a barge-in
    # The entry last built for this item and what it was built from: a long conversation's
    # entries are read often (tools, extraction, renew) and most items no longer change.
    built: tuple[object, ...] = ()
    entry: TranscriptEntry | None = None


# Ids of dropped items remembered, so a late event about one does not bring it back.
_GONE_REMEMBERED = 256


class Transcript:
    """Builds the transcript from server events; `apply` is cheap and never blocks.

    Args:
        max_items: the conversation items kept (turns, function calls and their outputs);
            beyond it the oldest in conversation order are dropped, a tenth at once so the
            cost stays small per item, and `dropped_entries` counts the turns among them.
    """

    def __init__(self, *, max_items: int | None = None) -> None:
        self._items: dict[str, _Item] = {}
        self._arrivals = count()
        self._max_items = max_items
        self.dropped_entries = 0
        self._gone = RecentIds(_GONE_REMEMBERED)
        # Sequence numbers that sort before every root: items whose previous item was dropped
        # become roots and take these, so dropping never reorders what is left.
        self._front = count(-1, -1)
        self._finalized: list[str] = []
        self._ordered_entries: list[TranscriptEntry] | None = None
        # The items in conversation order, kept up to date cheaply in the common case (each
        # new item follows the last one) and rebuilt only after an insert elsewhere or a delete.
        self._order: list[_Item] | None = []
        self._awaited_parents: set[str] = set()  # previous_item_ids not seen as items yet
        self._handlers: dict[str, Callable[[dict[str, Any]], bool]] = {
            **dict.fromkeys(_ITEM_EVENTS, self._on_item_event),
            **dict.fromkeys(_ASSISTANT_DONES, self._on_assistant_done),
            "input_audio_buffer.committed": self._on_committed,
            "conversation.item.input_audio_transcription.completed": self._on_user_completed,
            "conversation.item.input_audio_transcription.failed": self._on_user_failed,
            "conversation.item.deleted": self._on_deleted,
            "conversation.item.truncated": self._on_truncated,
        }

    def apply(self, event: dict[str, Any]) -> bool:
        """Take one server event into account; True when it was about the conversation.

        Runs once per event on the sideband's receive path: one lookup by type, then only the
        handler for that type.
        """
        kind = event.get("type")
        handler = self._handlers.get(kind) if type(kind) is str else None
        if handler is None:
            return False
        self._ordered_entries = None
        return handler(event)

    @property
    def has_finalized(self) -> bool:
        """Whether `take_finalized` has something (cheap: checked after every event)."""
        return bool(self._finalized)

    def _on_item_event(self, event: dict[str, Any]) -> bool:
        item = event.get("item")
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            self._on_item(item, event)
            return True
        return False

    def _on_committed(self, event: dict[str, Any]) -> bool:
        node = self._node(event.get("item_id"))
        if node is None:
            return False
        node.role, node.kind = "user", "message"
        if "previous_item_id" in event:
            self._set_prev(node, event["previous_item_id"])
        return True

    def _on_user_completed(self, event: dict[str, Any]) -> bool:
        return self._finish(event, event.get("transcript"), default_role="user")

    def _on_user_failed(self, event: dict[str, Any]) -> bool:
        node = self._node(event.get("item_id"))
        if node is None:
            return False
        node.role = node.role or "user"
        node.text = ""
        node.status = "failed"
        self._finalized.append(node.item_id)
        return True

    def _on_assistant_done(self, event: dict[str, Any]) -> bool:
        text = event.get(_ASSISTANT_DONES[event["type"]])
        return self._finish(event, text, default_role="assistant")

    def _finish(self, event: dict[str, Any], text: object, *, default_role: str) -> bool:
        node = self._node(event.get("item_id"))
        if node is None:
            return False
        node.role = node.role or default_role
        if node.status != "complete":
            self._finalized.append(node.item_id)
        node.text = str(text or "")
        node.status = "complete"
        return True

    def _on_truncated(self, event: dict[str, Any]) -> bool:
        item_id, audio_end_ms = event.get("item_id"), event.get("audio_end_ms")
        node = self._items.get(item_id) if isinstance(item_id, str) else None
        if node is None or not isinstance(audio_end_ms, int):
            return False
        node.audio_end_ms = audio_end_ms
        return True

    def knows(self, item_id: str) -> bool:
        """Whether the item has been seen (or was seen and dropped)."""
        return item_id in self._items or item_id in self._gone

    def _on_deleted(self, event: dict[str, Any]) -> bool:
        self._delete(event.get("item_id"))
        return True

    def entries(self) -> list[TranscriptEntry]:
        """User and assistant turns, in conversation order (kept until the next change)."""
        if self._ordered_entries is None:
            if self._order is None:
                self._order = self._ordered()
            self._ordered_entries = [
                entry for node in self._order if (entry := _entry(node)) is not None
            ]
        return list(self._ordered_entries)

    def forget_finalized(self) -> None:
        """Drop what `take_finalized` would give (nobody is listening)."""
        self._finalized.clear()

    def take_finalized(self) -> list[TranscriptEntry]:
        """Turns whose text became final (or whose transcription failed) since the last call."""
        ids, self._finalized = self._finalized, []
        # Read off the items themselves: ordering the whole conversation is not needed here,
        # on the sideband's receive path.
        nodes = (self._items.get(item_id) for item_id in dict.fromkeys(ids))
        return [entry for node in nodes if node is not None and (entry := _entry(node)) is not None]

    def pending_item_ids(self, limit: int) -> list[str]:
        """The latest *limit* turns still waiting for their final text (a reconnect asks
        upstream for them: their `.done` or transcription may have come during the drop)."""
        pending = [e.item_id for e in self.entries() if e.status == "pending"]
        return pending[-limit:]

    def pending_user_turns(self) -> int:
        """User turns whose transcription has not completed (nor failed) yet."""
        return sum(1 for e in self.entries() if e.role == "user" and e.status == "pending")

    def history_lines(self) -> list[str]:
        """`USER: ...` / `ASSISTANT: ...` lines of the turns that have text, for rehydration."""
        return [f"{e.role.upper()}: {e.text}" for e in self.entries() if e.text]

    def __len__(self) -> int:
        return len(self._items)

    # -- kept elsewhere: a shared store, a takeover by another replica ----------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything needed to carry on where this transcript is (JSON-ready): each item
        with its place (`seq`, `prev`), the dropped ids still remembered, the count of dropped
        turns. Turns finalized but not yet taken are not part of it."""
        return {
            "items": [
                {
                    "id": node.item_id,
                    "seq": node.seq,
                    "prev": node.prev,
                    "role": node.role,
                    "kind": node.kind,
                    "status": node.status,
                    "text": node.text,
                    "audioEndMs": node.audio_end_ms,
                }
                for node in self._items.values()
            ],
            "gone": list(self._gone),
            "droppedEntries": self.dropped_entries,
        }

    @classmethod
    def restore(cls, snapshot: dict[str, Any], *, max_items: int | None = None) -> Transcript:
        """A transcript that goes on exactly as the one *snapshot* was taken from would.

        Raises:
            ValueError: *snapshot* is not one `snapshot()` made.
        """
        transcript = cls(max_items=max_items)
        try:
            for raw in snapshot["items"]:
                status = raw["status"]
                if status not in ("pending", "complete", "failed"):
                    raise ValueError(f"unknown status {status!r}")
                node = _Item(
                    str(raw["id"]),
                    seq=int(raw["seq"]),
                    prev=raw["prev"],
                    role=raw["role"],
                    kind=raw["kind"],
                    status=status,
                    text=str(raw["text"]),
                    audio_end_ms=raw["audioEndMs"],
                )
                transcript._items[node.item_id] = node
            for item_id in snapshot["gone"]:
                transcript._gone.add(str(item_id))
            transcript.dropped_entries = int(snapshot["droppedEntries"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a transcript snapshot: {exc!r}") from None
        items = transcript._items
        seqs = [node.seq for node in items.values()]
        # New items arrive after every kept one; new roots of a drop go before every root.
        transcript._arrivals = count(max(seqs, default=-1) + 1)
        transcript._front = count(min(min(seqs, default=0), 0) - 1, -1)
        transcript._awaited_parents = {
            node.prev
            for node in items.values()
            if node.prev is not None
            and node.prev not in items
            and node.prev not in transcript._gone
        }
        transcript._order = None
        return transcript

    def _node(self, item_id: object) -> _Item | None:
        if not isinstance(item_id, str) or not item_id or item_id in self._gone:
            return None
        node = self._items.get(item_id)
        if node is None:
            node = self._items[item_id] = _Item(item_id, seq=next(self._arrivals))
            if item_id in self._awaited_parents:
                self._awaited_parents.discard(item_id)
                self._order = None  # items that named it as their previous move under it
            elif self._order is not None:
                self._order.append(node)  # the latest root: last in conversation order
            if self._max_items is not None and len(self._items) > self._max_items:
                self._drop_oldest(len(self._items) - self._max_items + self._max_items // 10)
        return node

    def _drop_oldest(self, n: int) -> None:
        """Drop the first *n* items in conversation order, keeping the rest in their order."""
        order = self._order if self._order is not None else self._ordered()
        dropped, kept = order[:n], order[n:]
        gone = {node.item_id for node in dropped}
        for node in dropped:
            del self._items[node.item_id]
            self._gone.add(node.item_id)
            if _entry(node) is not None:
                self.dropped_entries += 1
        # Items that followed a dropped one become roots, ahead of every other root, in the
        # order they had (the latest numbers sort first).
        orphans = [node for node in kept if node.prev in gone]
        for node in reversed(orphans):
            node.seq = next(self._front)
        self._order = kept

    def _set_prev(self, node: _Item, prev: object) -> None:
        """Place *node* after *prev*; the cached order survives when nothing moves."""
        prev = prev if isinstance(prev, str) else None
        if node.prev == prev:
            return
        was_root = node.prev not in self._items
        node.prev = prev
        parent = self._items.get(prev) if prev is not None else None
        if prev is not None and parent is None and prev not in self._gone:
            self._awaited_parents.add(prev)
        order = self._order
        if order is None:
            return
        if parent is not None:
            # Appended after the item just before it, with nothing after: nothing moves.
            if not (len(order) >= 2 and order[-1] is node and order[-2] is parent):
                self._order = None
        elif not was_root:
            self._order = None

    def _on_item(self, item: dict[str, Any], event: dict[str, Any]) -> None:
        node = self._node(item["id"])
        if node is None:
            return
        if "previous_item_id" in event:
            self._set_prev(node, event["previous_item_id"])
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
        self._order = None
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


_ROLES: dict[str | None, Role] = {"user": "user", "assistant": "assistant"}


def _entry(node: _Item) -> TranscriptEntry | None:
    """The turn an item is, if it is a user or assistant message (built again only once the
    item changed)."""
    key = (node.kind, node.role, node.text, node.status, node.audio_end_ms)
    if node.built != key:
        node.built = key
        role = _ROLES.get(node.role) if node.kind in (None, "message") else None
        node.entry = (
            TranscriptEntry(node.item_id, role, node.text, node.status, node.audio_end_ms)
            if role
            else None
        )
    return node.entry


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
