"""A stand-in for OpenAI's client-secret endpoint that costs next to nothing: for benchmarks.

The simulator checks every request against the SDK's types, which makes it the bottleneck of a
minting benchmark on a small machine (about 400 requests a second on one core here): what it
measures is then the simulator. This answers `POST /v1/realtime/client_secrets` (and nothing
else) with one fixed answer in the real API's shape, checked once against the SDK's type at
start, over keep-alive HTTP/1.1 parsed by hand: the server's own cost is what remains.

    python tools/bench_upstream.py --port 8200
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial

import trio

from realtime_trio.simulator.sessions import realtime_session

# The simulator's own session object: the real API's shape, built by the code that builds it there.
SECRET_ANSWER = {
    "value": "ek_bench_0123456789abcdef0123456789abcdef",
    "expires_at": int(time.time()) + 3600,
    "session": realtime_session({"type": "realtime"}),
}
PATH = b"/v1/realtime/client_secrets"


def answer(status: bytes, body: bytes) -> bytes:
    return (
        b"HTTP/1.1 "
        + status
        + b"\r\ncontent-type: application/json\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


async def serve_connection(ok: bytes, stream: trio.SocketStream) -> None:
    buffer = b""
    not_found = answer(b"404 Not Found", b'{"error": {"message": "not here"}}')
    async with stream:
        while True:
            while (end := buffer.find(b"\r\n\r\n")) < 0:
                data = await stream.receive_some(65536)
                if not data:
                    return
                buffer += data
            head, buffer = buffer[:end], buffer[end + 4 :]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(buffer) < length:
                data = await stream.receive_some(65536)
                if not data:
                    return
                buffer += data
            buffer = buffer[length:]
            target = head.split(b" ", 2)[1]
            await stream.send_all(ok if target == PATH else not_found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:  # the real API's shape, when the SDK is at hand (the dev extra)
        from openai.types.realtime import ClientSecretCreateResponse

        ClientSecretCreateResponse.model_validate(SECRET_ANSWER)
    except ImportError:
        pass
    ok = answer(b"200 OK", json.dumps(SECRET_ANSWER).encode())
    trio.run(partial(trio.serve_tcp, partial(serve_connection, ok), args.port, host="127.0.0.1"))


if __name__ == "__main__":
    main()
