"""The notes plugin: its handler and arguments, then loaded from its file by a real server.

The end-to-end tests use `realtime_trio.testing` (the `start_server` and `sim` fixtures, and
`open_call`), as a plugin kept in its own repository would.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from realtime_trio._profile import merge_profiles
from realtime_trio.testing import SimControl, StartServer, open_call

NOTES_PLUGIN = Path(__file__).resolve().parent.parent / "notes.py"


@pytest.fixture
async def client(start_server: StartServer) -> AsyncIterator[httpx.AsyncClient]:
    """A server that loads the plugin the way a deployment does: `REALTIME_PLUGINS=<path>`."""
    base_url = await start_server(realtime_plugins=str(NOTES_PLUGIN))
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        yield http


@pytest.fixture
def notes(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The plugin module, imported from its file as the server's loader does it.

    It goes in `sys.modules` while it runs: pydantic resolves the model's annotations there.
    """
    spec = importlib.util.spec_from_file_location("notes_under_test", NOTES_PLUGIN)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


async def session_state(client: httpx.AsyncClient, session_id: str) -> dict[str, Any]:
    """The session as the app sees it: `GET /session/{id}` (profile, instructions...)."""
    response = await client.get(f"/session/{session_id}")
    assert response.status_code == 200, response.text
    state: dict[str, Any] = response.json()
    return state


class FakeContext:
    """The part of a `ToolContext` the handler uses, merging as the server does."""

    def __init__(self, profile: Mapping[str, Any]) -> None:
        self.profile: Mapping[str, Any] = dict(profile)
        self.updates: list[Mapping[str, Any]] = []

    async def update_profile(self, changes: Mapping[str, Any]) -> Mapping[str, Any]:
        self.updates.append(changes)
        self.profile = merge_profiles(dict(self.profile), dict(changes))
        return self.profile


# -- the handler and its arguments --------------------------------------------------------


async def test_a_note_is_added_to_the_profile(notes: ModuleType) -> None:
    context = FakeContext({"first_name": "Ada", "notes": ["Buy oat milk"]})

    answer = await notes.remember_note(context, notes.NewNote(note="Call Charles at six"))

    assert answer == {"ok": True, "notes": ["Buy oat milk", "Call Charles at six"]}
    assert context.updates == [{"notes": ["Call Charles at six"]}]
    assert context.profile["first_name"] == "Ada"


async def test_the_first_note_starts_the_list(notes: ModuleType) -> None:
    context = FakeContext({"first_name": None})

    answer = await notes.remember_note(context, notes.NewNote(note="Buy oat milk"))

    assert answer == {"ok": True, "notes": ["Buy oat milk"]}


async def test_a_note_already_taken_is_not_repeated(notes: ModuleType) -> None:
    context = FakeContext({"notes": ["Buy oat milk"]})

    answer = await notes.remember_note(context, notes.NewNote(note="  Buy oat milk "))

    assert answer == {"ok": True, "notes": ["Buy oat milk"]}


@pytest.mark.parametrize("note", ["", "   ", "x" * 501])
def test_an_empty_or_overlong_note_is_refused_by_the_arguments(
    notes: ModuleType, note: str
) -> None:
    with pytest.raises(ValidationError, match="note"):
        notes.NewNote.model_validate({"note": note})


def test_the_arguments_take_up_to_500_characters_and_nothing_else(notes: ModuleType) -> None:
    assert notes.NewNote.model_validate({"note": "x" * 500}).note == "x" * 500
    with pytest.raises(ValidationError, match="extra"):
        notes.NewNote.model_validate({"note": "Buy oat milk", "urgent": True})


# -- through the server and the simulator -------------------------------------------------


async def test_the_server_lists_the_tool_with_its_plugin_file(client: httpx.AsyncClient) -> None:
    response = await client.get("/tools")

    assert response.status_code == 200, response.text
    (listed,) = [tool for tool in response.json()["tools"] if tool["name"] == "remember_note"]
    assert listed["plugin"] == str(NOTES_PLUGIN)
    assert listed["parameters"] == {
        "type": "object",
        "properties": {
            "note": {
                "type": "string",
                "minLength": 1,
                "maxLength": 500,
                "description": "What to remember, as one short sentence in the user's own words.",
                "title": "Note",
            }
        },
        "required": ["note"],
        "additionalProperties": False,
    }


async def test_the_model_remembers_a_note_and_the_call_learns_it(
    client: httpx.AsyncClient, sim: SimControl, notes: ModuleType
) -> None:
    call = await open_call(client, sim)
    (tool,) = notes.rt_register_tools()
    (attached,) = await call.client_events("session.update")
    assert tool.definition() in attached["session"]["tools"]
    assert tool.guidance in attached["session"]["instructions"]
    before = len(await call.client_events())

    answered = await call.call_tool("remember_note", {"note": "Buy oat milk"})

    assert answered.output == {"ok": True, "notes": ["Buy oat milk"]}
    assert answered.response_created is True
    after = (await call.client_events())[before:]
    # The output, then the new instructions, then the model is asked to speak.
    assert [event["type"] for event in after] == [
        "conversation.item.create",
        "session.update",
        "response.create",
    ]
    assert "Buy oat milk" in after[1]["session"]["instructions"]
    view = await session_state(client, call.session_id)
    assert view["profile"]["notes"] == ["Buy oat milk"]
    assert view["instructions"] == after[1]["session"]["instructions"]


async def test_notes_accumulate_without_duplicates(
    client: httpx.AsyncClient, sim: SimControl
) -> None:
    call = await open_call(client, sim)

    outputs = []
    for note in ["Buy oat milk", "Call Charles at six", "Buy oat milk"]:
        answered = await call.call_tool("remember_note", {"note": note})
        outputs.append(answered.output)

    assert outputs[-1] == {"ok": True, "notes": ["Buy oat milk", "Call Charles at six"]}
    view = await session_state(client, call.session_id)
    assert view["profile"]["notes"] == ["Buy oat milk", "Call Charles at six"]


async def test_an_empty_note_is_refused_before_the_handler_runs(
    client: httpx.AsyncClient, sim: SimControl
) -> None:
    call = await open_call(client, sim)

    answered = await call.call_tool("remember_note", {"note": ""})

    assert answered.output["ok"] is False
    assert answered.output["reason"] == "invalid_arguments"
    assert "note" in answered.output["message"]
    assert answered.response_created is True
    assert "notes" not in (await session_state(client, call.session_id))["profile"]


async def test_notes_survive_profile_extraction(client: httpx.AsyncClient, sim: SimControl) -> None:
    call = await open_call(client, sim, enableTranscription=True)
    await call.call_tool("remember_note", {"note": "Buy oat milk"})
    # Anything else on the call goes through the simulator's control API.
    await sim.drive(call.call_id, "user", text="Hi, my name is Ada Lovelace.")

    answered = await call.call_tool("extract_profile")

    profile = {"first_name": "Ada", "last_name": "Lovelace", "income": None}
    assert answered.output == {"ok": True, "profile": {**profile, "notes": ["Buy oat milk"]}}
    assert (await session_state(client, call.session_id))["profile"]["notes"] == ["Buy oat milk"]
