"""A tiny MCP server for the product demo: a clinic that tells the next free appointment.

Why it exists: the demo shows realtime-trio handing a voice assistant the tools of an
external MCP server. This one is self-contained (only the MCP SDK) and deterministic: the
slots come from a fixed table, not a clock or a database, so the demo always says the same
thing. It speaks MCP over stdio, so a client starts it as a subprocess:

    python plugins/mcp_demo/clinic_server.py
"""

from typing import Literal, TypedDict

from mcp.server.mcpserver import MCPServer

Department = Literal["dermatology", "cardiology", "general"]


class Slot(TypedDict):
    department: Department
    slot: str
    doctor: str


# The next free slot per department: all on Monday 7 December 2026.
NEXT_FREE: dict[str, tuple[str, str]] = {
    "dermatology": ("2026-12-07T09:30:00", "Dr. Amara Okafor"),
    "cardiology": ("2026-12-07T11:00:00", "Dr. Lukas Brandt"),
    "general": ("2026-12-07T14:15:00", "Dr. Sofia Marin"),
}

mcp = MCPServer("clinic", instructions="Appointments at the clinic.", log_level="WARNING")


@mcp.tool()
def next_free_slot(department: Department) -> Slot:
    """Next free appointment in a department: its local date-time and the doctor."""
    slot, doctor = NEXT_FREE[department]
    return {"department": department, "slot": slot, "doctor": doctor}


if __name__ == "__main__":
    mcp.run()
