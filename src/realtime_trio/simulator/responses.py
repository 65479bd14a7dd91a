"""`POST /v1/responses` as the simulated model answers it, and the failures tests arm for it.

The request is read the way the extraction prompt is written: the transcript's `USER: ...` lines
(in any system, developer or user text), else the user messages, and a previous profile given as
a JSON object after the words "previous profile". With a `json_schema` format the answer is the
schema filled from that (see `filling.py`); with `json_object` the facts as an object; otherwise
a fixed sentence. The answer is the raw `Response` object the API sends, nothing the SDK adds.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from .events import tokens
from .extractor import Facts, extract_facts
from .filling import fill
from .json_schema import fits
from .sessions import new_id

logger = logging.getLogger(__name__)

FailureMode = Literal["refusal", "incomplete", "invalid_json", "failed"]
FAILURE_MODES: tuple[str, ...] = get_args(FailureMode)
ANSWERS_KEPT = 1000

PLAIN_ANSWER = "This is a simulated response from the offline OpenAI simulator."
REFUSAL = "I'm sorry, I cannot help with that."
FAILED = {"code": "server_error", "message": "The model failed to generate a response."}

_USER_LINE = re.compile(r"(?im)^[ \t>*-]*(?:\[[^\]\n]*\][ \t]*)?user[ \t]*:[ \t]*(.*?)[ \t]*$")
_PREVIOUS = re.compile(r"(?i)previous[ _]profile")


class ArmedResponses:
    """What the next answers of `POST /v1/responses` will be, and the answers it gave.

    `arm("failed", times=2)` makes the next two answers failed ones; modes armed one after the
    other are used in that order. `answered` keeps the latest answers (the raw JSON sent).
    """

    def __init__(self) -> None:
        self._armed: deque[list[Any]] = deque()
        self.answered: deque[dict[str, Any]] = deque(maxlen=ANSWERS_KEPT)

    def arm(self, mode: FailureMode, times: int = 1) -> None:
        """Make the next *times* answers fail as *mode* says.

        Raises:
            ValueError: not one of `FAILURE_MODES`, or *times* below 1.
        """
        if mode not in FAILURE_MODES:
            raise ValueError(f"unknown mode {mode!r}: expected one of {', '.join(FAILURE_MODES)}")
        if times < 1:
            raise ValueError("times must be at least 1")
        self._armed.append([mode, times])

    @property
    def armed(self) -> list[tuple[str, int]]:
        return [(mode, times) for mode, times in self._armed]

    def clear(self) -> None:
        self._armed.clear()

    def take(self) -> FailureMode | None:
        """The mode of the next answer (counting this use of it), or None for a normal one."""
        if not self._armed:
            return None
        entry = self._armed[0]
        entry[1] -= 1
        if entry[1] == 0:
            self._armed.popleft()
        mode: FailureMode = entry[0]
        return mode


@dataclass
class Transcript:
    """What a request gives the model to read: the user's words and a previous profile."""

    said: str
    previous: dict[str, Any] | None = None
    texts: list[str] = field(default_factory=list)

    @property
    def facts(self) -> Facts:
        return extract_facts(self.said)


def read_transcript(body: dict[str, Any]) -> Transcript:
    """The `USER:` lines of the system, developer and user texts (else the user texts), and the
    JSON object after "previous profile" in any of them; `instructions` counts as system text."""
    users: list[str] = []
    others: list[str] = [body["instructions"]] if isinstance(body.get("instructions"), str) else []
    entries = body.get("input")
    if isinstance(entries, str):
        users.append(entries)
    for entry in entries if isinstance(entries, list) else []:
        role = entry.get("role") if isinstance(entry, dict) else None
        if role in ("user", "system", "developer") and entry.get("type", "message") == "message":
            (users if role == "user" else others).append(_text(entry.get("content")))
    previous = None
    for index, text in enumerate(others + users):
        found = _previous_profile(text)
        if found is not None:
            previous, cut = found
            if index >= len(others):
                users[index - len(others)] = cut
            break
    lines = [line for text in others + users for line in _USER_LINE.findall(text)]
    said = "\n".join(lines) if lines else "\n".join(users)
    return Transcript(said=said, previous=previous, texts=others + users)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else []
    return "\n".join(
        str(part.get("text", ""))
        for part in parts
        if isinstance(part, dict) and part.get("type") == "input_text"
    )


def _previous_profile(text: str) -> tuple[dict[str, Any], str] | None:
    """The JSON object after "previous profile" in *text*, and *text* without it."""
    decoder = json.JSONDecoder()
    for mention in _PREVIOUS.finditer(text):
        start = text.find("{", mention.end())
        while start != -1:
            try:
                value, end = decoder.raw_decode(text, start)
            except ValueError:
                start = text.find("{", start + 1)
                continue
            if isinstance(value, dict):
                return value, text[:start] + text[end:]
            break
    return None


def answer_text(body: dict[str, Any]) -> str:
    """What the model writes for *body*: the filled schema, the facts, or a plain sentence."""
    text_format = (body.get("text") or {}).get("format") or {"type": "text"}
    if text_format["type"] == "json_schema":
        transcript = read_transcript(body)
        schema = text_format["schema"]
        value = fill(schema, transcript.facts, transcript.previous)
        if not fits(value, schema, schema):  # keywords beyond the subset (a `pattern`...)
            logger.warning("the simulated answer does not fit schema %r", text_format["name"])
        return _compact(value)
    if text_format["type"] == "json_object":
        return _compact(read_transcript(body).facts.as_json())
    return PLAIN_ANSWER


def mentions_json(body: dict[str, Any]) -> bool:
    """Whether the input says "JSON" somewhere, which `json_object` mode requires."""
    return any("json" in text.lower() for text in read_transcript(body).texts)


def response_object(
    body: dict[str, Any], *, mode: FailureMode | None, now: float
) -> dict[str, Any]:
    """The raw `Response` for a validated request *body*, failing as *mode* says.

    `invalid_json` is text that is not JSON at all (the answer cut in half); `incomplete` is the
    same cut with `status: incomplete`, as when `max_output_tokens` runs out.
    """
    text = answer_text(body)
    status, error, details, output_tokens = "completed", None, None, tokens(text)
    content: list[dict[str, Any]] = [{"type": "output_text", "annotations": [], "text": text}]
    if mode == "refusal":
        content = [{"type": "refusal", "refusal": REFUSAL}]
        output_tokens = tokens(REFUSAL)
    elif mode in ("incomplete", "invalid_json"):
        cut = text[: max(1, len(text) // 2)]
        content = [{"type": "output_text", "annotations": [], "text": cut}]
        output_tokens = tokens(cut)
        if mode == "incomplete":
            status, details = "incomplete", {"reason": "max_output_tokens"}
            output_tokens = body.get("max_output_tokens") or output_tokens
    elif mode == "failed":
        status, error = "failed", dict(FAILED)
    output = []
    if mode != "failed":
        message_status = "incomplete" if status == "incomplete" else "completed"
        output.append(
            {
                "type": "message",
                "id": new_id("msg"),
                "status": message_status,
                "role": "assistant",
                "content": content,
            }
        )
    return {
        "id": new_id("resp"),
        "object": "response",
        "created_at": int(now),
        "completed_at": int(now) + 1 if status == "completed" else None,
        "status": status,
        "error": error,
        "incomplete_details": details,
        "background": body.get("background") or False,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": body.get("max_tool_calls"),
        "model": body["model"],
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "prompt_cache_key": body.get("prompt_cache_key"),
        "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
        "safety_identifier": body.get("safety_identifier"),
        "service_tier": "default",
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": _text_echo(body.get("text") or {}),
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": _tools_echo(body.get("tools") or []),
        "top_logprobs": body.get("top_logprobs", 0),
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "usage": None if status == "failed" else _usage(body, output_tokens),
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


def _text_echo(text: dict[str, Any]) -> dict[str, Any]:
    """`text` as the API echoes it: every field of the format, and the verbosity."""
    text_format = copy.deepcopy(text.get("format") or {"type": "text"})
    if text_format["type"] == "json_schema":
        text_format = {
            "type": "json_schema",
            "description": text_format.get("description"),
            "name": text_format["name"],
            "schema": text_format["schema"],
            "strict": bool(text_format.get("strict")),  # documented default: false
        }
    return {"format": text_format, "verbosity": text.get("verbosity") or "medium"}


def _tools_echo(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    echoed = copy.deepcopy(tools)
    for tool in echoed:
        if tool.get("type") == "function":
            tool.setdefault("description", None)
    return echoed


def _usage(body: dict[str, Any], output_tokens: int) -> dict[str, Any]:
    """Plausible counts: the request's text at about four characters a token, plus overhead."""
    input_tokens = (
        8
        + tokens(json.dumps(body.get("input", "")))
        + tokens(json.dumps((body.get("text") or {}).get("format") or {}))
    )
    if isinstance(body.get("instructions"), str):
        input_tokens += tokens(body["instructions"])
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
