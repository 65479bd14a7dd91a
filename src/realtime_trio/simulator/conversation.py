"""A call's conversation: items in order, each placed after its `previous_item_id`."""

from __future__ import annotations

import copy
from typing import Any

ROOT = "root"


class UnknownItem(LookupError):
    """No item with that id is in the conversation."""

    def __init__(self, item_id: str) -> None:
        super().__init__(item_id)
        self.item_id = item_id


class Conversation:
    """The ordered items of one call (the default conversation; out-of-band responses stay out)."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def __contains__(self, item_id: object) -> bool:
        return isinstance(item_id, str) and self._find(item_id) >= 0

    @property
    def last_id(self) -> str | None:
        """Where an appended item goes: after this id (None for an empty conversation)."""
        return self.items[-1]["id"] if self.items else None

    def get(self, item_id: str) -> dict[str, Any]:
        """The item *item_id* (a copy), or `UnknownItem`."""
        return copy.deepcopy(self.items[self._index(item_id)])

    def previous_id(self, item_id: str) -> str | None:
        index = self._index(item_id)
        return self.items[index - 1]["id"] if index else None

    def insert(self, item: dict[str, Any], *, after: str | None = None) -> str | None:
        """Place *item* after the id *after* (`"root"`: first; None: last); its predecessor's id.

        Raises:
            UnknownItem: *after* names no item; nothing is added.
        """
        if after is None:
            index = len(self.items)
        elif after == ROOT:
            index = 0
        else:
            index = self._index(after) + 1
        self.items.insert(index, copy.deepcopy(item))
        return self.items[index - 1]["id"] if index else None

    def replace(self, item: dict[str, Any]) -> None:
        """Put the final version of an item in the place of the one with its id."""
        self.items[self._index(item["id"])] = copy.deepcopy(item)

    def delete(self, item_id: str) -> None:
        del self.items[self._index(item_id)]

    def _index(self, item_id: str) -> int:
        index = self._find(item_id)
        if index < 0:
            raise UnknownItem(item_id)
        return index

    def _find(self, item_id: str) -> int:
        """The index of *item_id*, or -1; searched from the end, where the call is busy."""
        items = self.items
        for index in range(len(items) - 1, -1, -1):
            if items[index]["id"] == item_id:
                return index
        return -1
