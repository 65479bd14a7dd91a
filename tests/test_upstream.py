"""`OpenAIClient` on its own, with httpx's MockTransport standing in for the network."""

from __future__ import annotations

import json

import httpx
import pytest

from realtime_trio.config import Settings
from realtime_trio.errors import UpstreamBadResponse, UpstreamStatusError
from realtime_trio.upstream import OpenAIClient

KEY = "sk-unit-test-key-abcdef"


def client_answering(handler) -> OpenAIClient:
    settings = Settings(_env_file=None, openai_api_key=KEY)  # type: ignore[call-arg]
    return OpenAIClient(settings, http=httpx.AsyncClient(transport=httpx.MockTransport(handler)))


async def test_reads_the_ga_shape() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, json={"value": "ek_new", "expires_at": 1700000000, "session": {}}
        )

    secret = await client_answering(handler).create_client_secret({"type": "realtime"})

    assert (secret.value, secret.expires_at) == ("ek_new", 1700000000)
    (request,) = seen
    assert str(request.url) == "https://api.openai.com/v1/realtime/client_secrets"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert "openai-beta" not in request.headers
    assert json.loads(request.content) == {"session": {"type": "realtime"}}


async def test_reads_the_older_nested_shape() -> None:
    body = {"id": "sess_1", "client_secret": {"value": "ek_old", "expires_at": 1600000000}}

    secret = await client_answering(lambda _: httpx.Response(200, json=body)).create_client_secret(
        {"type": "realtime"}
    )

    assert (secret.value, secret.expires_at, secret.raw) == ("ek_old", 1600000000, body)


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, text="<html>proxy says hi</html>"),
        httpx.Response(200, json=["not", "an", "object"]),
        httpx.Response(200, json={"value": 5, "expires_at": 1}),
        httpx.Response(200, json={"value": "ek_x", "expires_at": "soon"}),
    ],
)
async def test_unusable_answers_are_bad_responses(answer: httpx.Response) -> None:
    with pytest.raises(UpstreamBadResponse):
        await client_answering(lambda _: answer).create_client_secret({"type": "realtime"})


async def test_error_bodies_that_are_not_openais_shape_still_explain() -> None:
    answer = httpx.Response(500, text=f"gateway exploded while using {KEY}")

    with pytest.raises(UpstreamStatusError) as raised:
        await client_answering(lambda _: answer).create_client_secret({"type": "realtime"})

    assert raised.value.upstream_status == 500
    assert "gateway exploded" in raised.value.message
    assert KEY not in raised.value.message
