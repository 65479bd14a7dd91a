"""Request bodies as the real API reads them: an empty body is `{}`, malformed JSON its 400."""

from __future__ import annotations

import json
from typing import Any

from quart import request

from .errors import invalid_request

NOT_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON.)"
)


async def json_body() -> Any:
    """The current request's JSON body (`{}` if empty).

    Raises:
        OpenAIError: 400, the body is not JSON.
    """
    raw = await request.get_data(as_text=False)
    try:
        return json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise invalid_request(NOT_JSON) from None
