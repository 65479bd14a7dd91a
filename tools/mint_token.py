"""Mint a client secret through a running realtime-trio server, as the SwiftUI app does.

    python tools/mint_token.py --server http://127.0.0.1:3001 --voice marin --transcription

Prints the server's JSON answer (or its JSON error) and exits non-zero on an error status.
"""

from __future__ import annotations

import argparse
import json
import sys

import httpx


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="http://127.0.0.1:3001", help="the server's base URL")
    parser.add_argument("--api-key", help="one of the server's SERVER_API_KEYS, if it has any")
    parser.add_argument("--model", help="realtime model (the server's default if absent)")
    parser.add_argument("--voice", help="output voice; without one the session is text-only")
    parser.add_argument("--transcription", action="store_true", help="set enableTranscription")
    parser.add_argument("--instructions", help="system instructions for the call")
    args = parser.parse_args(argv)

    body = {
        key: value
        for key, value in (
            ("model", args.model),
            ("voice", args.voice),
            ("enableTranscription", args.transcription or None),
            ("instructions", args.instructions),
        )
        if value is not None
    }
    try:
        headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
        response = httpx.post(
            f"{args.server.rstrip('/')}/token", json=body, headers=headers, timeout=30
        )
    except httpx.HTTPError as exc:
        print(f"could not reach {args.server}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(response.json(), indent=2))
    return 0 if response.is_success else 1


if __name__ == "__main__":
    raise SystemExit(main())
