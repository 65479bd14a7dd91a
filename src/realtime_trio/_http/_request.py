"""The request class: JSON bodies are parsed the way the original's clients send them."""

from __future__ import annotations

import json
from typing import Any

from quart_trio.wrappers import TrioRequest

from .._errors import InvalidJSON


class ApiRequest(TrioRequest):
    """A request whose JSON body may be absent (meaning `{}`) and whose errors are ours.

    The body is parsed as JSON whatever the `Content-Type` says, since every endpoint takes
    JSON only; a body over `MAX_CONTENT_LENGTH` raises 413 while it is read.
    """

    async def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        data = await self.get_data(cache, False, False)  # positional: the overload for bytes
        if not data.strip():
            return {}
        try:
            return parse_json_body(data)
        except InvalidJSON:
            if silent:
                return None
            raise


def parse_json_body(data: bytes) -> Any:
    """*data* (not empty) parsed as JSON text.

    Raises:
        InvalidJSON: for anything that is not JSON text, saying what is wrong: not UTF-8 (nor
            the UTF-16/32 json.loads detects), bad syntax, a number with more digits than int()
            converts, or nesting deeper than the parser's recursion. Nothing else escapes.
    """
    try:
        # Strict, unlike json.loads(bytes), which lets UTF-8-encoded surrogates through.
        text = data.decode(json.detect_encoding(data))
    except UnicodeDecodeError:
        raise InvalidJSON("Malformed JSON body: it is not UTF-8 text") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidJSON(
            f"Malformed JSON body: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except ValueError:
        # int() refuses strings beyond sys.get_int_max_str_digits() (4300 by default).
        raise InvalidJSON("Malformed JSON body: a number in it has too many digits") from None
    except RecursionError:
        raise InvalidJSON("Malformed JSON body: it is nested too deeply") from None
