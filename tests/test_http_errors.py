"""Every error leaves as JSON `{"error": str, "code": str}` naming what was wrong."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from realtime_trio.simulator import RunningSimulator


async def test_malformed_json_is_a_400(
    client: httpx.AsyncClient, simulator: RunningSimulator
) -> None:
    response = await client.post(
        "/token", content=b'{"voice": "marin",', headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    answer = response.json()
    assert answer["code"] == "invalid_json"
    assert answer["error"].startswith("Malformed JSON body:")
    assert "line 1" in answer["error"]
    assert list(simulator.state.requests) == []


async def test_body_that_is_not_utf8_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/token", content=b"\xff\xfe{}")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_json"


# Found by tests/test_properties.py: each was a 500 ("Internal server error") before.
@pytest.mark.parametrize(
    ("body", "message"),
    [
        # int() refuses more than 4300 digits: a ValueError that is not a JSONDecodeError.
        (
            b'{"enableTranscription": 1' + b"0" * 5000 + b"}",
            "Malformed JSON body: a number in it has too many digits",
        ),
        # Deeper than the parser's recursion (whatever limit pytest sets), still under 64 KiB.
        (b"[" * 30_000 + b"]" * 30_000, "Malformed JSON body: it is nested too deeply"),
        # A surrogate as raw (CESU-8) bytes: json.loads(bytes) decoded it, httpx then could not
        # encode the model to send it upstream.
        (b'{"model": "\xed\xa0\x80"}', "Malformed JSON body: it is not UTF-8 text"),
    ],
    ids=["huge-number", "deep-nesting", "raw-surrogate"],
)
async def test_json_the_parser_cannot_take_is_a_400_not_a_500(
    client: httpx.AsyncClient, simulator: RunningSimulator, body: bytes, message: str
) -> None:
    response = await client.post("/token", content=body)

    assert response.status_code == 400
    assert response.json() == {"error": message, "code": "invalid_json"}
    assert list(simulator.state.requests) == []


# Found by tests/test_properties.py: a lone surrogate escape is valid JSON but not Unicode
# text; it was a 500 when the string was sent upstream (UTF-8 cannot encode it).
@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/token", '{"model": "\\ud800"}', "model"),
        ("/token", '{"instructions": "hi \\udfff"}', "instructions"),
        ("/session", '{"voice": "\\udc00marin"}', "voice"),
        ("/session", '{"callId": "rtc_\\ud83d"}', "callId"),
        ("/session/call", '{"sessionId": "x", "callId": "\\ud800"}', "callId"),
    ],
)
async def test_a_lone_surrogate_in_a_field_is_a_400_naming_it(
    client: httpx.AsyncClient, simulator: RunningSimulator, path: str, body: str, field: str
) -> None:
    response = await client.post(path, content=body)

    assert response.status_code == 400
    answer = response.json()
    assert answer["code"] == "invalid_request"
    assert answer["field"] == field
    assert answer["error"] == (
        f"Invalid field '{field}': Input should be Unicode text, without a lone UTF-16 "
        "surrogate (a \\ud800-\\udfff escape outside a pair)"
    )
    assert list(simulator.state.requests) == []


async def test_surrogate_pairs_and_ignored_keys_are_fine(
    client: httpx.AsyncClient, simulator: RunningSimulator
) -> None:
    # A pair is one character (here an emoji); keys the server ignores are not looked at.
    body = '{"instructions": "Hi \\ud83d\\ude00", "transcript": "\\ud800"}'

    response = await client.post("/token", content=body)

    assert response.status_code == 200, response.text
    sent = simulator.state.requests[0].body["session"]
    assert sent["instructions"] == "Hi \U0001f600"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"voice": 5}, "voice"),
        ({"model": ["gpt-realtime"]}, "model"),
        ({"enableTranscription": "yes"}, "enableTranscription"),
        ({"enableTranscription": 1}, "enableTranscription"),
        ({"instructions": {"text": "hi"}}, "instructions"),
    ],
)
async def test_wrong_field_type_is_a_400_naming_the_field(
    client: httpx.AsyncClient, simulator: RunningSimulator, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/token", json=body)

    assert response.status_code == 400
    answer = response.json()
    assert answer["code"] == "invalid_request"
    assert answer["field"] == field
    assert answer["error"].startswith(f"Invalid field '{field}': ")
    assert list(simulator.state.requests) == []


@pytest.mark.parametrize("body", [[], "text", 3, None])
async def test_body_that_is_not_an_object_is_a_400(client: httpx.AsyncClient, body: Any) -> None:
    response = await client.post("/token", content=json.dumps(body))

    assert response.status_code == 400
    assert response.json() == {
        "error": "Request body must be a JSON object",
        "code": "invalid_request",
    }


async def test_oversize_body_is_a_413(start_server: Any, simulator: RunningSimulator) -> None:
    url = await start_server(max_request_body_bytes=1024)
    async with httpx.AsyncClient(base_url=url) as http:
        small = await http.post("/token", json={"instructions": "x" * 900})
        large = await http.post("/token", json={"instructions": "x" * 2000})

    assert small.status_code == 200
    assert large.status_code == 413
    assert large.json() == {
        "error": "Request body is larger than the limit of 1024 bytes",
        "code": "request_entity_too_large",
    }
    assert len(simulator.state.requests) == 1


async def test_oversize_chunked_body_is_a_413(start_server: Any) -> None:
    url = await start_server(max_request_body_bytes=1024)

    async def chunks():  # no Content-Length: the limit holds while the body streams in
        for _ in range(10):
            yield b" " * 512

    async with httpx.AsyncClient(base_url=url) as http:
        response = await http.post("/token", content=chunks())

    assert response.status_code == 413
    assert response.json()["code"] == "request_entity_too_large"


async def test_unknown_route_is_a_json_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/nope")

    assert response.status_code == 404
    assert response.json() == {"error": "Not found: GET /nope", "code": "not_found"}


async def test_wrong_method_is_a_json_405(client: httpx.AsyncClient) -> None:
    response = await client.get("/token")

    assert response.status_code == 405
    assert response.json() == {
        "error": "Method GET is not allowed on /token",
        "code": "method_not_allowed",
    }
