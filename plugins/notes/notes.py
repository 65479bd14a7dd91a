"""Notes: the `remember_note` tool keeps what the user asks the assistant to remember.

A single-file plugin, loaded with `REALTIME_PLUGINS=plugins/notes/notes.py`. Notes live in the
session's profile under `notes` (the server merges lists without duplicates), so they are in
`GET /session/{id}` and in the instructions the live call receives after each note.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from realtime_trio import Tool, ToolContext, hookimpl

MAX_NOTE_CHARS = 500


class NewNote(BaseModel):
    """The arguments of `remember_note`."""

    model_config = ConfigDict(extra="forbid")

    note: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NOTE_CHARS)
    ] = Field(description="What to remember, as one short sentence in the user's own words.")


async def remember_note(context: ToolContext, arguments: NewNote) -> dict[str, Any]:
    profile = await context.update_profile({"notes": [arguments.note]})
    return {"ok": True, "notes": list(profile["notes"])}


@hookimpl
def rt_register_tools() -> list[Tool]:
    return [
        Tool(
            name="remember_note",
            description=(
                "Save a note the user wants remembered (a reminder, a preference, a fact) for "
                "the rest of the conversation. Answers with every note saved so far."
            ),
            handler=remember_note,
            parameters=NewNote,
            guidance="Call remember_note when the user asks you to remember or note something.",
        )
    ]
