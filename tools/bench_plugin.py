"""The benchmark's tool: `bench_noop` does nothing, so a tool call measures only the server.

Loaded by `tools/bench.py` with `REALTIME_PLUGINS=tools/bench_plugin.py`.
"""

from __future__ import annotations

from realtime_trio import NoArguments, Tool, ToolContext, hookimpl


async def noop(context: ToolContext, arguments: NoArguments) -> dict[str, bool]:
    return {"ok": True}


@hookimpl
def rt_register_tools() -> list[Tool]:
    return [Tool(name="bench_noop", description="Does nothing (benchmarks).", handler=noop)]
