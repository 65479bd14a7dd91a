"""Prometheus metrics: what the server does and what it costs, with no per-session label.

One `Metrics` per server, handed to what counts (never a module global). Its families live in
a registry of its own; with `--workers`, the supervisor gives every worker the same
`PROMETHEUS_MULTIPROC_DIR`, each worker's values go to files there, and any worker's
`/metrics` reads them all (prometheus-client's multiprocess mode), so one scrape sees every
worker.

Counting stays off the hot path: sideband events are counted once per batch of frames, and the
gauges (sessions, sidebands by state) are set from the session manager once a second.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from ._pricing import ModelPrice
from ._usage import TOKEN_KINDS, add_counts, counts_cost

PREFIX = "realtime_trio"
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
SIDEBAND_STATES = ("idle", "connecting", "connected", "reconnecting", "closed", "failed", "expired")
# Seconds: an HTTP request, a tool call or an upstream request.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """Every metric family of the server, in a registry of its own."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self._multiprocess_dir = os.environ.get(MULTIPROCESS_DIR) or None
        # Usage counted since the last flush: counts (`COUNTS`) and price, by model.
        self._pending: dict[str, list[int]] = {}
        self._prices: dict[str, ModelPrice | None] = {}
        registry = self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            f"{PREFIX}_http_requests",
            "HTTP requests answered, by route pattern and status.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.http_duration = Histogram(
            f"{PREFIX}_http_request_duration_seconds",
            "Time to answer an HTTP request, by route pattern.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.sessions_live = Gauge(
            f"{PREFIX}_sessions_live",
            "Sessions held by this server.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.sidebands = Gauge(
            f"{PREFIX}_sidebands",
            "Sidebands by state.",
            ["state"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.sideband_events = Counter(
            f"{PREFIX}_sideband_events", "Server events received on sidebands.", registry=registry
        )
        self.sideband_reconnects = Counter(
            f"{PREFIX}_sideband_reconnects",
            "Sideband connections made again after a drop.",
            registry=registry,
        )
        self.tool_calls = Counter(
            f"{PREFIX}_tool_calls",
            "Function calls answered, by tool and outcome (ok, or the error output's reason).",
            ["tool", "outcome"],
            registry=registry,
        )
        self.tool_duration = Histogram(
            f"{PREFIX}_tool_call_duration_seconds",
            "Time to answer a function call, by tool.",
            ["tool"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.upstream_requests = Counter(
            f"{PREFIX}_upstream_requests",
            "Requests to OpenAI's REST API, by endpoint and status (error: no answer).",
            ["endpoint", "status"],
            registry=registry,
        )
        self.upstream_duration = Histogram(
            f"{PREFIX}_upstream_request_duration_seconds",
            "Time of a request to OpenAI's REST API, by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.extractions = Counter(
            f"{PREFIX}_extractions",
            "Profile extractions, by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.usage_tokens = Counter(
            f"{PREFIX}_usage_tokens",
            "Tokens the calls used, by model and kind (input_text, input_audio, input_image, "
            "input_cached, output_text, output_audio; cached tokens are also in the input "
            "kinds, as the API reports them).",
            ["model", "kind"],
            registry=registry,
        )
        self.cost = Counter(
            f"{PREFIX}_cost_usd",
            "What the calls cost in USD, by model, where its price is known.",
            ["model"],
            registry=registry,
        )

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.http_requests.labels(method, route, str(status)).inc()
        self.http_duration.labels(method, route).observe(seconds)

    def tool_call(self, tool: str, outcome: str, seconds: float) -> None:
        self.tool_calls.labels(tool, outcome).inc()
        self.tool_duration.labels(tool).observe(seconds)

    def upstream_request(self, endpoint: str, status: int | None, seconds: float) -> None:
        self.upstream_requests.labels(endpoint, str(status) if status else "error").inc()
        self.upstream_duration.labels(endpoint).observe(seconds)

    def usage(self, model: str, counts: tuple[int, ...], price: ModelPrice | None) -> None:
        """Count tokens (`COUNTS`, of one response or a session's batch), priced by *price*
        (None: unknown). It adds to plain sums that `flush` hands to the counters: a counter's
        `labels` alone costs more than a response's handling on the receive path."""
        add_counts(self._pending, model, counts)
        self._prices[model] = price

    def flush(self) -> None:
        """Hand the sums `usage` kept to the counters (before a scrape, and once a second)."""
        pending, self._pending = self._pending, {}
        for model, counts in pending.items():
            price = self._prices[model]
            for kind, count in zip(TOKEN_KINDS, counts, strict=False):
                if count:
                    self.usage_tokens.labels(model, kind).inc(count)
            if price is not None and (cost := counts_cost(counts, price)):
                self.cost.labels(model).inc(cost)

    def set_sessions(self, live: int, sideband_states: Iterable[str]) -> None:
        """The gauges, from the session manager's view now."""
        self.sessions_live.set(live)
        counts = dict.fromkeys(SIDEBAND_STATES, 0)
        for state in sideband_states:
            counts[state] = counts.get(state, 0) + 1
        for state, count in counts.items():
            self.sidebands.labels(state).set(count)

    def exposition(self) -> bytes:
        """The text format a scrape gets: every worker's values with `--workers` (another
        worker's usage counts reach it within a second, at its next `flush`)."""
        self.flush()
        if self._multiprocess_dir is None:
            return generate_latest(self.registry)
        gathered = CollectorRegistry()
        multiprocess.MultiProcessCollector(  # type: ignore[no-untyped-call]
            gathered, path=self._multiprocess_dir
        )
        return generate_latest(gathered)


def upstream_endpoint(path: str) -> str:
    """The `endpoint` label of a REST path: `client_secrets`, `responses`, `hangup`, ..."""
    parts = [part for part in path.split("?")[0].split("/") if part]
    if not parts:
        return "other"
    if parts[-1] in ("hangup", "accept", "reject", "refer"):
        return parts[-1]
    return parts[-1] if parts[-1] in ("client_secrets", "responses", "calls") else "other"


def outcome_of(output: object) -> str:
    """A tool call's `outcome` label: `ok`, or its error output's `reason`."""
    if isinstance(output, dict) and output.get("ok") is False:
        reason = output.get("reason")
        return reason if isinstance(reason, str) else "error"
    return "ok"
