"""The request class: JSON bodies are parsed the way the original's clients send them."""

from __future__ import annotations

import json
from typing import Any

from quart_trio.wrappers import TrioRequest

from .errors import InvalidJSON


class ApiRequest(TrioRequest):
    """A request whose JSON body may be absent (meaning `{}`) and whose errors are ours.

    The body is parsed as JSON whatever the `Content-Type` says, since every endpoint takes
    JSON only; a body over `MAX_CONTENT_LENGTH` raises 413 while it is read.
    """

    async def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        data = await self.get_data(cache=cache, as_text=False)
        if not data.strip():
            return {}
        try:
            return json.loads(data)
        except json.JSONDecodeError as exc:
            if silent:
                return None
            raise InvalidJSON(
                f"Malformed JSON body: {exc.msg} (line {exc.lineno}, column {exc.colno})"
            ) from None
        except UnicodeDecodeError:
            if silent:
                return None
            raise InvalidJSON("Malformed JSON body: it is not UTF-8 text") from None
