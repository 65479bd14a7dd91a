"""A scriptable MCP server that the test suite starts as a real process.

Why it exists: realtime-trio's MCP client is tested against the official MCP Python SDK
server over real stdio pipes and real streamable HTTP, not against a mock, so the tests
see the wire as production servers send it. Each tool exercises one client behaviour:

- ``lookup_order``: an input-schema ``pattern`` and structured content with an outputSchema;
- ``echo_text``: plain text content only; ``fail``: an ``isError`` result;
- ``wait``: a slow call, to be cancelled (the cancellation is written to the log);
- ``crash``: the process dies mid-call, without answering;
- ``add_tool``: a tool registered at runtime, then ``notifications/tools/list_changed``;
- ``picture``: an image content item plus a text one.

The tests read what the server saw from ``--log``: one JSON object per line, appended
(``started`` on every start, ``call`` for every ``tools/call`` before the tool runs, and
``cancelled`` when ``wait`` is cancelled). In stdio mode stdout is the protocol, so
nothing else is ever printed there; diagnostics go to stderr.

    python tests/mcp_test_server.py --transport stdio --log PATH [--name NAME]
    python tests/mcp_test_server.py --transport http --port N --log PATH [--name NAME]

With ``--transport http`` the server answers on ``http://127.0.0.1:N/mcp`` (stateful
sessions, SSE responses) and, when ``MCP_TEST_REQUIRED_HEADER`` is set, refuses with 401
every request whose ``Authorization`` header is not exactly that value. The ``started``
line is written once the port is bound, so it doubles as a readiness signal.
"""

import argparse
import functools
import json
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypedDict

import anyio
import uvicorn
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.lowlevel import NotificationOptions
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import (
    INVALID_REQUEST,
    CallToolResult,
    ImageContent,
    TextContent,
    ToolListChangedNotification,
)
from pydantic import Field
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

ORDER_ID_PATTERN = r"^[A-Z]{2}-[0-9]{4}$"

# A 1x1 red PNG.
RED_DOT_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
)


class Order(TypedDict):
    orderId: str
    status: str
    items: int


def append_log(path: Path, event: dict[str, Any]) -> None:
    """Append one JSON line; opening in append mode keeps lines whole across processes."""
    with path.open("a", encoding="utf-8") as log:
        log.write(json.dumps(event) + "\n")
        log.flush()


def build_server(name: str, log_path: Path) -> MCPServer:
    log = functools.partial(append_log, log_path)
    server = MCPServer(name, log_level="WARNING")

    async def log_tool_calls(
        ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        # Middleware sees the raw request, so calls with bad arguments are logged too.
        if ctx.method == "tools/call" and ctx.request_id is not None:
            params = ctx.params or {}
            arguments = params.get("arguments") or {}
            log({"event": "call", "tool": params.get("name"), "arguments": arguments})
        return await call_next(ctx)

    server.middleware.append(log_tool_calls)

    @server.tool(description="Look up an order by its id (like AB-1234).")
    def lookup_order(order_id: Annotated[str, Field(pattern=ORDER_ID_PATTERN)]) -> Order:
        return {"orderId": order_id, "status": "shipped", "items": 2}

    @server.tool(description="Echo the text back.", structured_output=False)
    def echo_text(text: str) -> str:
        return "echo: " + text

    @server.tool(description="Fail with the given message.")
    def fail(message: str) -> CallToolResult:
        return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)

    @server.tool(description="Sleep for the given number of seconds.", structured_output=False)
    async def wait(seconds: float) -> str:
        try:
            await anyio.sleep(seconds)
        except anyio.get_cancelled_exc_class():
            log({"event": "cancelled", "tool": "wait"})
            raise
        return "waited"

    @server.tool(description="Kill the server process mid-call.", structured_output=False)
    def crash() -> str:
        os._exit(3)

    @server.tool(description="Register a new tool with the given name.", structured_output=False)
    async def add_tool(name: str, ctx: Context) -> str:
        greeting = "hello from " + name

        def hello() -> str:
            return greeting

        ctx.mcp_server.add_tool(hello, name=name, description="Say hello.", structured_output=False)
        # Request-scoped, so over HTTP it rides this call's SSE stream (always open) rather
        # than the standalone GET stream (which the client may not have opened yet).
        await ctx.session.send_notification(
            ToolListChangedNotification(), related_request_id=ctx.request_context.request_id
        )
        return "added"

    @server.tool(description="Return a picture and its caption.")
    def picture() -> CallToolResult:
        image = ImageContent(type="image", data=RED_DOT_PNG, mime_type="image/png")
        return CallToolResult(content=[image, TextContent(type="text", text="a red dot")])

    # MCPServer advertises `tools.listChanged: false` unless told otherwise, and both the
    # stdio runner and the HTTP session manager ask the low-level server for its options.
    lowlevel = server._lowlevel_server
    lowlevel.create_initialization_options = functools.partial(  # type: ignore[method-assign]
        lowlevel.create_initialization_options, NotificationOptions(tools_changed=True)
    )
    return server


def require_authorization(app: ASGIApp, expected: str) -> ASGIApp:
    """Refuse (401) every HTTP request whose Authorization header is not `expected`.

    The body is a JSON-RPC error, which the SDK client surfaces as the call's MCPError
    (for any other 4xx body it reports only "Server returned an error response").
    """
    error = {"code": INVALID_REQUEST, "message": "Unauthorized: wrong or missing Authorization"}
    refusal = JSONResponse({"jsonrpc": "2.0", "id": None, "error": error}, status_code=401)

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            if headers.get(b"authorization", b"").decode("latin-1") != expected:
                await refusal(scope, receive, send)
                return
        await app(scope, receive, send)

    return guarded


def serve_http(server: MCPServer, port: int, on_bound: Callable[[], None]) -> None:
    app: ASGIApp = server.streamable_http_app(
        host="127.0.0.1",
        # Tests connect to 127.0.0.1:N; the Host check would only get in their way.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    if required := os.environ.get("MCP_TEST_REQUIRED_HEADER"):
        app = require_authorization(app, required)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    on_bound()  # connections made from now on wait in the backlog until uvicorn accepts
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transport", choices=["stdio", "http"], required=True)
    parser.add_argument("--port", type=int, help="required with --transport http")
    parser.add_argument("--log", type=Path, required=True, help="JSON-lines file to append to")
    parser.add_argument("--name", default="testserver")
    args = parser.parse_args(argv)
    if args.transport == "http" and args.port is None:
        parser.error("--transport http needs --port")

    server = build_server(args.name, args.log)
    started = functools.partial(append_log, args.log, {"event": "started", "pid": os.getpid()})
    if args.transport == "stdio":
        started()
        server.run("stdio")
    else:
        sys.stderr.write(f"serving on http://127.0.0.1:{args.port}/mcp\n")
        serve_http(server, args.port, started)


if __name__ == "__main__":
    main()
