"""`GET /metrics`: the Prometheus families move as things happen, with no per-session label."""

from __future__ import annotations

import re

import httpx

from realtime_trio.testing import StartServer, open_call
from sim_client import SimControl, scrape, wait_until


async def test_metrics_move_as_requests_tool_calls_usage_and_sessions_happen(
    start_server: StartServer, sim: SimControl
) -> None:
    url = await start_server()
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        call = await open_call(client, sim)
        assert (await client.get(f"/session/{call.session_id}")).status_code == 200
        await sim.drive(call.call_id, "user", text="Hi, I'm Ada.")
        answer = await call.call_tool("extract_profile")
        assert answer.output is not None

        async def live(n: float) -> dict[str, float] | None:
            seen = await scrape(client)
            return seen if seen.get("realtime_trio_sessions_live") == n else None

        seen = await wait_until(lambda: live(1))
        assert (
            seen['realtime_trio_http_requests_total{method="POST",route="/session",status="200"}']
            == 1
        )
        route = 'method="GET",route="/session/{session_id}",status="200"'
        assert seen[f"realtime_trio_http_requests_total{{{route}}}"] == 1
        assert seen['realtime_trio_sidebands{state="connected"}'] == 1
        assert seen["realtime_trio_sideband_events_total"] > 0
        assert seen['realtime_trio_tool_calls_total{outcome="ok",tool="extract_profile"}'] == 1
        assert (
            seen['realtime_trio_upstream_requests_total{endpoint="client_secrets",status="200"}']
            == 1
        )
        assert seen['realtime_trio_upstream_requests_total{endpoint="responses",status="200"}'] == 1
        assert seen['realtime_trio_usage_tokens_total{kind="output_text",model="gpt-realtime"}'] > 0
        assert seen['realtime_trio_cost_usd_total{model="gpt-realtime"}'] > 0

        text = (await client.get("/metrics")).text
        assert call.session_id not in text
        assert call.call_id not in text

        assert (await client.delete(f"/session/{call.session_id}")).status_code == 204
        ended = await wait_until(lambda: live(0))
        assert ended['realtime_trio_upstream_requests_total{endpoint="hangup",status="200"}'] == 1


async def test_metrics_need_a_key_when_keys_are_set(start_server: StartServer) -> None:
    url = await start_server(server_api_keys="k-metrics-1")
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        refused = await client.get("/metrics")
        allowed = await client.get("/metrics", headers={"Authorization": "Bearer k-metrics-1"})

    assert refused.status_code == 401
    assert refused.json()["code"] == "unauthorized"
    assert allowed.status_code == 200
    assert re.search(r"^# TYPE realtime_trio_http_requests_total counter$", allowed.text, re.M)


async def test_metrics_can_be_turned_off(start_server: StartServer) -> None:
    url = await start_server(metrics_enabled=False)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        assert (await client.get("/metrics")).status_code == 404
