"""The benchmark keeps working: every scenario at tiny sizes, as real processes.

Timing is never asserted here (goals live in the bench itself); what is asserted is that each
scenario produced its figures and that every marker, tool call and probe was answered.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import trio

BENCH = Path(__file__).parents[1] / "tools" / "bench.py"


async def test_every_scenario_runs_and_answers_everything(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    with trio.fail_after(240):
        finished = await trio.run_process(
            [sys.executable, str(BENCH), "--smoke", "--out", str(out)],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert finished.returncode == 0, finished.stderr.decode()[-3000:]
    report = json.loads(out.read_text())
    scenarios = report["scenarios"]
    assert set(scenarios) == {
        "ingest",
        "turnaround",
        "sessions",
        "minting",
        "churn",
        "ingest-store",
        "minting-workers",
        "takeover",
        "sessions-store",
    }
    assert report["machine"]["cores"] >= 1

    ingest = scenarios["ingest"]
    assert ingest["markerAnswered"] is True
    assert 2_000 <= ingest["parameters"]["events"] < 2_100  # rounded up to whole turns
    assert ingest["serverEventsPerSecond"] > 0
    assert ingest["bareTrioWebsocketEventsPerSecond"] > 0
    assert ingest["simulatorSendEventsPerSecond"] > 0
    assert ingest["transcriptEntries"] > 0  # the blast's turns reached the transcript

    turnaround = scenarios["turnaround"]
    for figures, calls in ((turnaround["noop"], 20), (turnaround["extractProfile"], 5)):
        assert figures["calls"] == figures["answered"] == calls
        assert figures["responseCreate"]["samples"] == calls
        assert figures["responseCreate"]["p99Ms"] > 0

    live = scenarios["sessions"]["k20"]
    assert live["sessions"] == 20
    assert live["attach"]["samples"] == 20
    assert live["socketsLeftOpen"] == 0
    trickle = live["trickle"]
    assert trickle["eventsSent"] > 0
    assert trickle["probesAnswered"] == trickle["probesSent"] > 0

    minting = scenarios["minting"]
    for name in ("session.c1", "session.c50", "token.c1", "token.c50"):
        assert minting[name]["requests"] > 0, name
        assert minting[name]["failures"] == {}, name

    churn = scenarios["churn"]
    assert len(churn["rssAfterRoundMiB"]) == 2
    assert churn["socketsLeftOpen"] == 0

    with_store = scenarios["ingest-store"]
    for way in ("memory", "store"):
        assert with_store[way]["serverEventsPerSecond"] > 0, way
        assert with_store[way]["transcriptEntries"] > 0, way
    assert with_store["store"]["storedTranscriptItems"] >= with_store["store"]["transcriptEntries"]
    assert with_store["storeOverMemory"] > 0

    workers = scenarios["minting-workers"]
    for name in ("session", "token"):
        for way, replicas in (("memory.w1", 1), ("store.w1", 1), ("store.w2", 2)):
            figures = workers[f"{name}.{way}"]
            assert figures["requests"] > 0, (name, way)
            assert figures["failures"] == {}, (name, way)
            assert len(figures["replicas"]) == replicas, (name, way)
        assert workers[f"{name}.w2OverW1"] > 0

    takeover = scenarios["takeover"]
    assert takeover["parameters"]["trials"] == takeover["takenOver"] == 2
    assert takeover["twoSocketsOpenAtOnce"] == 0
    assert takeover["observed"]["samples"] == 2

    live_with_store = scenarios["sessions-store"]
    for way in ("memory", "store"):
        assert live_with_store[way]["sessions"] == 20, way
        assert live_with_store[way]["socketsLeftOpen"] == 0, way
    valkey = live_with_store["store"]["valkey"]
    assert valkey["keysWhileLive"]["record"] == 20
    assert "record" not in valkey["keysAfterDelete"]
    assert "lease" not in valkey["keysAfterDelete"]

    assert {goal["figure"] for goal in report["goals"]} >= {
        "ingest.serverEventsPerSecond",
        "ingest-store.storeOverMemory",
        "takeover.beyondLease.p99Ms",
    }
