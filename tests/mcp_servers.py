"""Real MCP servers for the tests: `mcp_test_server.py` run as a process, over stdio (started by
the server under test, from `MCP_SERVERS_FILE`) or over streamable HTTP (started here).

Each server appends what it was asked to a log (`{"event": "call", ...}`, `"cancelled"`,
`"started"`), so a test can say what reached the server and what never did.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from functools import partial
from pathlib import Path
from typing import Any

import trio

from sim_client import closed_port

SERVER_SCRIPT = Path(__file__).with_name("mcp_test_server.py")


class McpLog:
    """What the test MCP servers recorded, read from their log file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def entries(self, event: str | None = None) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        lines = self.path.read_text().splitlines()
        found = [json.loads(line) for line in lines if line.strip()]
        return [e for e in found if event is None or e["event"] == event]

    def calls(self, tool: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.entries("call") if tool is None or e["tool"] == tool]


def stdio_entry(log: McpLog, **extra: Any) -> dict[str, Any]:
    """An `mcpServers` entry that starts the test server over stdio."""
    return {
        "command": sys.executable,
        "args": [str(SERVER_SCRIPT), "--transport", "stdio", "--log", str(log.path)],
        **extra,
    }


def write_servers_file(directory: Path, servers: dict[str, Any]) -> Path:
    path = directory / "mcp_servers.json"
    path.write_text(json.dumps({"mcpServers": servers}, indent=2))
    return path


class HttpMcpServer:
    """The test server over streamable HTTP on a loopback port, run (and restarted) here."""

    def __init__(self, log: McpLog, *, env: dict[str, str] | None = None) -> None:
        self.log = log
        self.port = closed_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self._env = env or {}
        self._process: trio.Process | None = None

    async def start(self, nursery: trio.Nursery) -> None:
        command = [
            sys.executable,
            str(SERVER_SCRIPT),
            "--transport",
            "http",
            "--port",
            str(self.port),
            "--log",
            str(self.log.path),
        ]
        run = partial(trio.run_process, command, env={**os.environ, **self._env}, check=False)
        self._process = await nursery.start(run)
        with trio.fail_after(30):
            while True:
                try:
                    stream = await trio.open_tcp_stream("127.0.0.1", self.port)
                except OSError:
                    await trio.sleep(0.05)
                    continue
                await stream.aclose()
                return

    def kill(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        self.kill()
        if self._process is not None:
            await self._process.wait()
