"""A bare Quart-Trio app on Hypercorn answering `POST /token` with fixed JSON: for benchmarks.

The floor under the server's minting figures on the machine at hand: what Quart-Trio and
Hypercorn cost per request with no upstream call, no logging and no session. The minting
scenario measures it in the same run, so its figures can be read against this machine's floor
rather than another machine's absolute numbers.

    python tools/bench_bare_app.py --port 8300
"""

from __future__ import annotations

import argparse

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart_trio import QuartTrio

app = QuartTrio(__name__)


@app.post("/token")
async def token() -> dict[str, object]:
    return {"client_secret": "ek_bare", "expires_at": 0}


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    config = Config()
    config.bind = [f"127.0.0.1:{parser.parse_args().port}"]
    config.accesslog = None
    trio.run(serve, app, config)


if __name__ == "__main__":
    main()
