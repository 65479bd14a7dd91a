"""Answers serialised with orjson: Quart's provider, with the standard library's encoder kept
for what orjson does not do (an indented document, an object only a fallback can convert)."""

from __future__ import annotations

from typing import Any

import orjson
from quart import Quart
from quart.json.provider import DefaultJSONProvider

_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


class FastJSONProvider(DefaultJSONProvider):
    """`app.json` with orjson for compact answers, sorted as Quart sorts them.

    Args:
        app: the app.
        fallback: the provider it replaces (quart-schema's), used for anything else.
    """

    def __init__(self, app: Quart, fallback: DefaultJSONProvider) -> None:
        super().__init__(app)
        self._fallback = fallback

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        if kwargs.keys() - {"separators"}:  # indent, say: the OpenAPI document
            return self._fallback.dumps(obj, **kwargs)
        try:
            return orjson.dumps(obj, default=self._fallback.default, option=_OPTIONS).decode()
        except TypeError:  # what orjson cannot serialise at all (an int over 64 bits, say)
            return self._fallback.dumps(obj, **kwargs)
