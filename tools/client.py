"""Play the SwiftUI app's part against a running server and simulator, one step at a time.

    python tools/client.py session                 # POST /session, WebRTC call, POST /session/call
    python tools/client.py say "Hi, I'm Ada Lovelace."
    python tools/client.py tool extract_profile '{}'
    python tools/client.py model-says "Nice to meet you, Ada!"
    python tools/client.py extract | renew | show | close
    python tools/client.py script src/realtime_trio/demo_script.json

The session and call ids are kept in a small state file (`--state`) between invocations.
Steps run through `realtime_trio._demo.ScriptRunner`, so they are checked as the demo checks
them; a failed step prints one line and exits 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import httpx
import trio

from realtime_trio._demo import AppClient, DemoFailed, ScriptRunner, load_script


def _steps(args: argparse.Namespace) -> list[dict[str, Any]] | None:
    """The script steps a subcommand stands for (None: it is not a script step)."""
    if args.command == "say":
        return [{"user": args.text, "respond": args.respond}]
    if args.command == "model-says":
        return [{"assistant": args.text}]
    if args.command == "tool":
        return [{"tool": args.name, "arguments": json.loads(args.arguments), "expect": {}}]
    if args.command in ("extract", "renew", "close"):
        return [{"client": {"extract": "extract-profile"}.get(args.command, args.command)}]
    if args.command == "script":
        return load_script(args.file)
    return None


async def run(args: argparse.Namespace) -> Any:
    saved = json.loads(args.state.read_text()) if args.state.exists() else {}
    server = args.server.rstrip("/")

    async def add_api_key(request: httpx.Request) -> None:
        # Only to the server, never to the simulator (whose calls carry their own credential).
        if args.api_key and str(request.url).startswith(server + "/"):
            request.headers.setdefault("Authorization", f"Bearer {args.api_key}")

    async with httpx.AsyncClient(timeout=30, event_hooks={"request": [add_api_key]}) as http:
        app = AppClient(http, server=server, simulator=args.simulator.rstrip("/"))
        runner = ScriptRunner(app)
        if args.command == "session":
            await runner.connect()
        elif args.command == "call":
            app.session_id = saved["sessionId"]
            app.client_secret = args.secret or saved["clientSecret"]
            await app.create_call()
            await app.attach_call()
        else:
            if args.command != "script":  # a script starts its own session
                if not saved.get("sessionId"):
                    raise DemoFailed("no session yet: run `client.py session` first")
                app.session_id, app.call_id = saved["sessionId"], saved.get("callId")
                app.client_secret = saved.get("clientSecret")
            steps = _steps(args)
            if steps is not None:
                await runner.run(steps)
        state = {"sessionId": app.session_id, "callId": app.call_id}
        state["clientSecret"] = app.client_secret
        if runner.closed_status is not None:  # the session is gone
            args.state.unlink(missing_ok=True)
        else:
            args.state.write_text(json.dumps(state))
        if args.command == "show":
            return await app.show()
        if args.command == "close":
            return {"closed": runner.closed_status, "transcript": runner.final["transcript"]}
        return {"state": state, "timeline": runner.timeline.steps}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="http://127.0.0.1:3001", help="the server's base URL")
    parser.add_argument("--api-key", help="one of the server's SERVER_API_KEYS, if it has any")
    parser.add_argument(
        "--simulator", default="http://127.0.0.1:8100", help="the simulator's root URL (no /v1)"
    )
    parser.add_argument(
        "--state", type=Path, default=Path(".client-state.json"), help="where ids are kept"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("session", help="start a session, open a call, report it")
    call = commands.add_parser("call", help="open a new call (renewed secret) and report it")
    call.add_argument("--secret", help="the client secret to use (default: the last one)")
    say = commands.add_parser("say", help="the user says TEXT")
    say.add_argument("text")
    say.add_argument(
        "--respond",
        action="store_true",
        help="the model chooses its answer from the words (extract_profile when a fact is "
        "shared); otherwise it answers with what is queued, or its default reply",
    )
    model = commands.add_parser("model-says", help="the assistant says TEXT")
    model.add_argument("text")
    tool = commands.add_parser("tool", help="the model calls tool NAME with JSON arguments")
    tool.add_argument("name")
    tool.add_argument("arguments", nargs="?", default="{}")
    commands.add_parser("extract", help="POST /extract-profile")
    commands.add_parser("renew", help="POST /session/renew, then a new call on the new secret")
    commands.add_parser("show", help="GET /session/{id}")
    commands.add_parser("close", help="DELETE /session/{id}")
    script = commands.add_parser("script", help="play a demo script (JSON or YAML)")
    script.add_argument("file", type=Path)
    args = parser.parse_args(argv)

    try:
        result = trio.run(run, args)
    except (DemoFailed, httpx.HTTPError, KeyError, json.JSONDecodeError) as exc:
        print(f"client.py: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
