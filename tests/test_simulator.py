"""The simulator's `client_secrets` endpoint answers as the real API does, per the SDK's types."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio
from openai.types.realtime import ClientSecretCreateResponse

from realtime_trio.simulator import DEFAULT_API_KEY, RunningSimulator, SimulatorState, run_simulator

AUTH = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}


@pytest.fixture
async def sim(simulator: RunningSimulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=simulator.base_url) as http:
        yield http


async def test_mints_a_secret_in_the_sdk_shape(
    sim: httpx.AsyncClient, simulator: RunningSimulator
) -> None:
    body = {
        "session": {
            "type": "realtime",
            "model": "gpt-realtime",
            "instructions": "Be brief.",
            "audio": {
                "output": {"voice": "marin"},
                "input": {"transcription": {"model": "gpt-4o-mini-transcribe"}},
            },
        }
    }
    before = int(time.time())

    response = await sim.post("/realtime/client_secrets", json=body, headers=AUTH)

    assert response.status_code == 200
    answer = response.json()
    ClientSecretCreateResponse.model_validate(answer)
    assert answer["value"].startswith("ek_")
    assert before + 600 <= answer["expires_at"] <= int(time.time()) + 600
    session = answer["session"]
    assert session["object"] == "realtime.session"
    assert session["id"].startswith("sess_")
    assert session["instructions"] == "Be brief."
    assert session["output_modalities"] == ["audio"]
    assert session["audio"]["output"]["voice"] == "marin"
    assert session["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert session["audio"]["input"]["transcription"] == {"model": "gpt-4o-mini-transcribe"}
    assert simulator.state.live_secret(answer["value"]) is not None


async def test_honours_expires_after(sim: httpx.AsyncClient) -> None:
    response = await sim.post(
        "/realtime/client_secrets",
        json={"expires_after": {"anchor": "created_at", "seconds": 30}},
        headers=AUTH,
    )

    assert response.status_code == 200
    assert abs(response.json()["expires_at"] - (time.time() + 30)) <= 2


async def test_transcription_sessions_are_accepted(sim: httpx.AsyncClient) -> None:
    response = await sim.post(
        "/realtime/client_secrets",
        json={"session": {"type": "transcription", "audio": {"input": {"noise_reduction": None}}}},
        headers=AUTH,
    )

    assert response.status_code == 200
    ClientSecretCreateResponse.model_validate(response.json())
    assert response.json()["session"]["type"] == "transcription"


async def test_secrets_expire(nursery: trio.Nursery) -> None:
    now = [1_000_000.0]
    state = SimulatorState(clock=lambda: now[0])
    simulator: RunningSimulator = await nursery.start(lambda **kw: run_simulator(state=state, **kw))
    async with httpx.AsyncClient(base_url=simulator.base_url) as http:
        answer = (await http.post("/realtime/client_secrets", json={}, headers=AUTH)).json()

    assert answer["expires_at"] == 1_000_600
    assert state.live_secret(answer["value"]) is not None
    now[0] += 600
    assert state.live_secret(answer["value"]) is None
    assert state.live_secret("ek_never_minted") is None


async def test_missing_key_is_a_401(sim: httpx.AsyncClient) -> None:
    response = await sim.post("/realtime/client_secrets", json={})

    assert response.status_code == 401
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith("You didn't provide an API key.")
    assert set(error) == {"message", "type", "param", "code"}


async def test_wrong_key_is_a_401_with_a_masked_echo(sim: httpx.AsyncClient) -> None:
    key = "sk-proj-wrongwrongwrong1234"
    response = await sim.post(
        "/realtime/client_secrets", json={}, headers={"Authorization": f"Bearer {key}"}
    )

    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "invalid_api_key"
    assert error["message"].startswith("Incorrect API key provided: sk-pro")
    assert key not in error["message"]


async def test_an_ephemeral_secret_cannot_mint_another(sim: httpx.AsyncClient) -> None:
    secret = (await sim.post("/realtime/client_secrets", json={}, headers=AUTH)).json()["value"]

    response = await sim.post(
        "/realtime/client_secrets", json={}, headers={"Authorization": f"Bearer {secret}"}
    )

    assert response.status_code == 401


@pytest.mark.parametrize(
    ("body", "status", "param", "code"),
    [
        (
            {"session": {"type": "realtime", "modle": "x"}},
            400,
            "session.modle",
            "unknown_parameter",
        ),
        (
            {"session": {"type": "realtime", "audio": {"output": {"voice": "marin", "bogus": 1}}}},
            400,
            "session.audio.output.bogus",
            "unknown_parameter",
        ),
        ({"sesion": {}}, 400, "sesion", "unknown_parameter"),
        ({"session": {"type": "realtime", "model": 5}}, 400, "session.model", "invalid_type"),
        (
            {"session": {"type": "realtime", "output_modalities": "text"}},
            400,
            "session.output_modalities",
            "invalid_type",
        ),
        (
            {"session": {"type": "realtime", "audio": {"output": {"speed": "fast"}}}},
            400,
            "session.audio.output.speed",
            "invalid_type",
        ),
        ({"session": {"model": "gpt-realtime"}}, 400, "session.type", "missing_required_parameter"),
        ({"session": {"type": "chat"}}, 400, "session.type", "invalid_value"),
        (
            {"session": {"type": "realtime", "output_modalities": ["audio", "text"]}},
            400,
            "session.output_modalities",
            "invalid_value",
        ),
        (
            {"session": {"type": "realtime", "max_output_tokens": 99999}},
            400,
            "session.max_output_tokens",
            "integer_out_of_range",
        ),
        (
            {"expires_after": {"anchor": "created_at", "seconds": 5}},
            400,
            "expires_after.seconds",
            "integer_out_of_range",
        ),
        (
            {"expires_after": {"anchor": "now", "seconds": 60}},
            400,
            "expires_after.anchor",
            "invalid_value",
        ),
        (
            {"session": {"type": "realtime", "tools": [{"type": "function", "name": 3}]}},
            400,
            "session.tools[0].name",
            "invalid_type",
        ),
    ],
)
async def test_malformed_session_is_a_400_naming_the_parameter(
    sim: httpx.AsyncClient, body: dict[str, Any], status: int, param: str, code: str
) -> None:
    response = await sim.post("/realtime/client_secrets", json=body, headers=AUTH)

    assert response.status_code == status
    error = response.json()["error"]
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error")
    assert error["message"].startswith(("Unknown", "Invalid", "Missing"))


async def test_body_that_is_not_json_is_a_400(sim: httpx.AsyncClient) -> None:
    response = await sim.post("/realtime/client_secrets", content=b"{nope", headers=AUTH)

    assert response.status_code == 400
    assert "could not parse the JSON body" in response.json()["error"]["message"]


async def test_unknown_url_is_a_404_in_openai_shape(sim: httpx.AsyncClient) -> None:
    response = await sim.post("/realtime/nothing", json={}, headers=AUTH)

    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Invalid URL (POST /v1/realtime/nothing)"


async def test_faults_are_armed_over_http(
    simulator: RunningSimulator, sim: httpx.AsyncClient
) -> None:
    async with httpx.AsyncClient(base_url=simulator.url) as control:
        armed = await control.post(
            "/_sim/faults",
            json={
                "path": "/v1/realtime/client_secrets",
                "status": 429,
                "headers": {"Retry-After": "2"},
            },
        )
        assert armed.status_code == 201

        failed = await sim.post("/realtime/client_secrets", json={}, headers=AUTH)
        served = await sim.post("/realtime/client_secrets", json={}, headers=AUTH)
        recorded = (await control.get("/_sim/requests")).json()["requests"]

    assert failed.status_code == 429
    assert failed.headers["retry-after"] == "2"
    assert served.status_code == 200
    assert [r["path"] for r in recorded] == ["/v1/realtime/client_secrets"] * 2
    assert recorded[0]["headers"]["authorization"].startswith("Bearer sk-")
    assert DEFAULT_API_KEY not in str(recorded)
