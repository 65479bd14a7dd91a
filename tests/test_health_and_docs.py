"""`/healthz` and the generated OpenAPI document."""

from __future__ import annotations

from typing import Any

import httpx

from realtime_trio.simulator import RunningSimulator


async def test_healthz_answers_ok_without_touching_upstream(
    start_server: Any, simulator: RunningSimulator
) -> None:
    url = await start_server(openai_api_key=None, openai_base_url="http://127.0.0.1:9/v1")
    async with httpx.AsyncClient(base_url=url) as http:
        response = await http.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert list(simulator.state.requests) == []


async def test_openapi_document_describes_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")

    assert response.status_code == 200
    document = response.json()
    token = document["paths"]["/token"]["post"]
    assert set(token["responses"]) >= {"200", "400", "413", "502", "503", "504"}
    request = token["requestBody"]["content"]["application/json"]["schema"]
    assert set(request["properties"]) == {"model", "voice", "enableTranscription", "instructions"}
    assert set(_schema(token, "200")["required"]) == {"clientSecret", "expiresAt", "raw"}
    assert set(_schema(token, "502")["required"]) == {"error", "code"}
    assert "/healthz" in document["paths"]


async def test_readyz_without_a_shared_store_is_ready_and_names_the_replica(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/readyz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["store"] == "memory"
    assert isinstance(body["replica"], str)


async def test_openapi_document_lists_every_endpoint(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]

    assert {path: sorted(ops) for path, ops in paths.items()} == {
        "/healthz": ["get"],
        "/readyz": ["get"],
        "/metrics": ["get"],
        "/token": ["post"],
        "/session": ["post"],
        "/session/call": ["post"],
        "/session/renew": ["post"],
        "/session/close": ["post"],
        "/session/{session_id}": ["delete", "get"],
        "/session/{session_id}/events": ["get"],
        "/sessions": ["get"],
        "/extract-profile": ["post"],
        "/tools": ["get"],
    }


async def test_docs_page_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")

    assert response.status_code == 200
    assert "openapi.json" in response.text


def _schema(operation: dict[str, Any], status: str) -> dict[str, Any]:
    return operation["responses"][status]["content"]["application/json"]["schema"]
