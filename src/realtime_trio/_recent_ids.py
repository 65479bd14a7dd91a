"""A set that remembers only its latest members: what a session keeps to recognise repeats
(function calls already answered, transcript items already dropped) without growing forever."""

from __future__ import annotations

from collections.abc import Iterator, MutableSet


class RecentIds(MutableSet[str]):
    """A set that remembers only its latest *maxlen* members (the oldest added goes first)."""

    def __init__(self, maxlen: int) -> None:
        self._ids: dict[str, None] = {}
        self._maxlen = maxlen

    def __contains__(self, value: object) -> bool:
        return value in self._ids

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, value: str) -> None:
        self._ids[value] = None
        if len(self._ids) > self._maxlen:
            del self._ids[next(iter(self._ids))]

    def discard(self, value: str) -> None:
        self._ids.pop(value, None)
