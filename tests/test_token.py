"""`POST /token` over real sockets, with the simulator as upstream."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import trio

from realtime_trio.simulator import Fault, RunningSimulator
from sim_client import closed_port

CLIENT_SECRETS = "/v1/realtime/client_secrets"


def upstream_bodies(simulator: RunningSimulator) -> list[Any]:
    return [r.body for r in simulator.state.requests_to(CLIENT_SECRETS)]


@pytest.mark.parametrize(
    "content",
    [None, b"", b"{}", b"  \n"],
    ids=["no body", "empty body", "empty object", "whitespace"],
)
async def test_token_body_is_optional(
    client: httpx.AsyncClient, simulator: RunningSimulator, content: bytes | None
) -> None:
    response = await client.post("/token", content=content)

    assert response.status_code == 200
    answer = response.json()
    assert set(answer) == {"clientSecret", "expiresAt", "raw"}
    minted = simulator.state.live_secret(answer["clientSecret"])
    assert minted is not None
    assert answer["expiresAt"] == minted.expires_at
    assert upstream_bodies(simulator) == [
        {"session": {"type": "realtime", "model": "gpt-realtime", "output_modalities": ["text"]}}
    ]


async def test_token_answers_upstream_json_as_raw(
    client: httpx.AsyncClient, simulator: RunningSimulator
) -> None:
    response = await client.post(
        "/token", json={"model": "gpt-realtime", "voice": "marin", "enableTranscription": True}
    )

    answer = response.json()
    assert answer["raw"]["value"] == answer["clientSecret"]
    assert answer["raw"]["expires_at"] == answer["expiresAt"]
    assert answer["raw"]["session"] == simulator.state.secrets[answer["clientSecret"]].session
    assert answer["raw"]["session"]["audio"]["output"]["voice"] == "marin"


@pytest.mark.parametrize("model", [None, "gpt-realtime-mini"])
@pytest.mark.parametrize("voice", [None, "marin"])
@pytest.mark.parametrize("transcription", [None, False, True])
async def test_upstream_session_config_follows_the_original(
    client: httpx.AsyncClient,
    simulator: RunningSimulator,
    model: str | None,
    voice: str | None,
    transcription: bool | None,
) -> None:
    body = {
        key: value
        for key, value in (
            ("model", model),
            ("voice", voice),
            ("enableTranscription", transcription),
        )
        if value is not None
    }

    response = await client.post("/token", json=body)

    assert response.status_code == 200
    expected: dict[str, Any] = {"type": "realtime", "model": model or "gpt-realtime"}
    audio: dict[str, Any] = {}
    if voice:
        audio["output"] = {"voice": voice}
    else:
        expected["output_modalities"] = ["text"]
    if transcription:
        audio["input"] = {"transcription": {"model": "gpt-4o-mini-transcribe"}}
    if audio:
        expected["audio"] = audio
    assert upstream_bodies(simulator) == [{"session": expected}]


async def test_settings_choose_default_models(
    start_server: Any, simulator: RunningSimulator
) -> None:
    url = await start_server(realtime_model="gpt-realtime-2", transcription_model="whisper-1")
    async with httpx.AsyncClient(base_url=url) as http:
        await http.post("/token", json={"enableTranscription": True})

    (session,) = [body["session"] for body in upstream_bodies(simulator)]
    assert session["model"] == "gpt-realtime-2"
    assert session["audio"]["input"]["transcription"] == {"model": "whisper-1"}


async def test_instructions_are_passed_upstream(
    client: httpx.AsyncClient, simulator: RunningSimulator
) -> None:
    await client.post("/token", json={"voice": "cedar", "instructions": "Be brief."})

    (body,) = upstream_bodies(simulator)
    assert body["session"]["instructions"] == "Be brief."
    assert (
        simulator.state.requests_to(CLIENT_SECRETS)[0]
        .headers["authorization"]
        .startswith("Bearer sk-")
    )


async def test_empty_strings_mean_not_given(
    client: httpx.AsyncClient, simulator: RunningSimulator
) -> None:
    await client.post("/token", json={"model": "", "voice": "", "transcript": "ignored"})

    assert upstream_bodies(simulator) == [
        {"session": {"type": "realtime", "model": "gpt-realtime", "output_modalities": ["text"]}}
    ]


async def test_wrong_api_key_is_a_502_with_upstreams_message(
    start_server: Any, simulator: RunningSimulator
) -> None:
    wrong_key = "sk-test-wrong-key-0123456789abcdef"
    url = await start_server(openai_api_key=wrong_key)
    async with httpx.AsyncClient(base_url=url) as http:
        response = await http.post("/token", json={})

    assert response.status_code == 502
    answer = response.json()
    assert answer["code"] == "upstream_error"
    assert answer["upstreamStatus"] == 401
    assert answer["upstreamCode"] == "invalid_api_key"
    assert answer["error"].startswith("Upstream error 401: Incorrect API key provided")
    assert wrong_key not in response.text
    assert wrong_key[-4:] not in response.text  # not even OpenAI's masked echo of it


async def test_upstream_server_error_is_a_502_carrying_its_status(
    start_server: Any, simulator: RunningSimulator
) -> None:
    simulator.state.faults.append(
        Fault(path=CLIENT_SECRETS, status=503, error={"message": "Slow down", "type": "x"})
    )
    url = await start_server(upstream_retry_attempts=0)  # retries: test_upstream_retries.py

    async with httpx.AsyncClient(base_url=url) as http:
        response = await http.post("/token")

    assert response.status_code == 502
    assert response.json() == {
        "error": "Upstream error 503: Slow down",
        "code": "upstream_error",
        "upstreamStatus": 503,
        "upstreamCode": None,
    }


async def test_upstream_answer_without_a_secret_is_a_502(
    client: httpx.AsyncClient, simulator: RunningSimulator
) -> None:
    simulator.state.faults.append(Fault(path=CLIENT_SECRETS, status=200))

    response = await client.post("/token")

    assert response.status_code == 502
    assert response.json()["code"] == "upstream_bad_response"


async def test_unreachable_upstream_is_a_502(start_server: Any) -> None:
    url = await start_server(openai_base_url=f"http://127.0.0.1:{closed_port()}/v1")
    async with httpx.AsyncClient(base_url=url) as http:
        response = await http.post("/token")

    assert response.status_code == 502
    answer = response.json()
    assert answer["code"] == "upstream_unreachable"
    assert "POST /realtime/client_secrets" in answer["error"]


async def test_slow_upstream_is_a_504_at_the_configured_timeout(
    start_server: Any, simulator: RunningSimulator
) -> None:
    simulator.state.faults.append(Fault(path=CLIENT_SECRETS, delay_seconds=60))
    url = await start_server(upstream_timeout_seconds=0.5)

    async with httpx.AsyncClient(base_url=url) as http:
        # The answer must come from our deadline, long before the upstream's 60 s.
        with trio.fail_after(30):
            response = await http.post("/token")

    assert response.status_code == 504
    assert response.json() == {
        "error": "Upstream did not answer POST /realtime/client_secrets within 0.5 seconds",
        "code": "upstream_timeout",
    }


async def test_missing_api_key_is_a_503_and_calls_no_upstream(
    start_server: Any, simulator: RunningSimulator
) -> None:
    url = await start_server(openai_api_key=None)
    async with httpx.AsyncClient(base_url=url) as http:
        response = await http.post("/token", json={"voice": "marin"})

    assert response.status_code == 503
    answer = response.json()
    assert answer["code"] == "not_configured"
    assert "OPENAI_API_KEY is not configured" in answer["error"]
    assert upstream_bodies(simulator) == []
