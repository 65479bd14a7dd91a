"""The bench's report: the goals, checked against the figures, and the table it prints.

Goals are the issue's targets for this server on a 2-core machine; they are checked here, after
a run, and never in timed tests.
"""

from __future__ import annotations

from typing import Any

# (scenario, figure, comparison, goal): checked and printed after the run.
GOALS = (
    ("ingest", "serverEventsPerSecond", ">=", 250_000),
    ("turnaround", "noop.serverAdded.p99Ms", "<", 2.0),
    ("turnaround", "extractProfile.serverAdded.p99Ms", "<", 5.0),
    ("turnaround", "extractProfile.serverAdded.p50Ms", "<=", 3.0),
    ("sessions", "k{max}.rssPerSessionKiB", "<", 40.0),
    ("sessions", "k{max}.trickle.latency.p99Ms", "<", 50.0),
    # Minting on one process, its upstream a stand-in that costs next to nothing (the
    # simulator alone mints about 400 a second here); 3x the first wave's ~300.
    ("minting", "standIn.session.c50.requestsPerSecond", ">=", 900),
    ("minting", "standIn.session.c50.p99Ms", "<", 100.0),
    ("minting", "standIn.session.c50.cpu.serverMsPerRequest", "<=", 1.1),
    ("minting", "standIn.token.c50.requestsPerSecond", ">=", 900),
    ("minting", "standIn.token.c50.p99Ms", "<", 100.0),
    ("minting", "standIn.token.c50.cpu.serverMsPerRequest", "<=", 1.1),
    # The same CPU goal on any machine: 1.1 ms where a bare Quart-Trio route took 0.56 ms.
    ("minting", "standIn.session.c50.cpu.timesBareRoute", "<=", 1.96),
    ("minting", "standIn.token.c50.cpu.timesBareRoute", "<=", 1.96),
    # Nothing grows without bound: rounds after the first reuse the memory it took.
    ("churn", "rssGrowthAfterFirstRoundMiB", "<", 5.0),
    # Issue 17: ingest with STORE_URL set within 10% of memory mode (no store round trip per
    # event); a killed replica's call taken over within SIDEBAND_LEASE_SECONDS plus about 2 s.
    # Minting on 2 workers and memory per session with the store are measured, not goals.
    ("ingest-store", "storeOverMemory", ">=", 0.90),
    ("takeover", "beyondLease.p99Ms", "<", 2000.0),
)


def check_goals(results: dict[str, Any], max_k: int) -> list[dict[str, Any]]:
    """Each goal whose scenario ran: the figure, the goal, and whether it was met (None: no
    figure). `k{max}` in a path stands for the largest K the sessions scenario ran."""
    checked = []
    for scenario, path, comparison, goal in GOALS:
        if scenario not in results:
            continue
        value = _lookup(results[scenario], path.format(max=max_k))
        met = None if value is None else _compare(value, comparison, goal)
        checked.append(
            {
                "figure": f"{scenario}.{path.format(max=max_k)}",
                "value": value,
                "goal": f"{comparison} {goal:,}",
                "met": met,
            }
        )
    return checked


def _compare(value: float, comparison: str, goal: float) -> bool:
    if comparison == ">=":
        return value >= goal
    if comparison == "<=":
        return value <= goal
    return value < goal


def _lookup(figures: dict[str, Any], path: str) -> Any:
    """A figure by dotted path, where a key may itself contain dots (`session.c50`)."""
    if path in figures:
        return figures[path]
    for key, value in figures.items():
        if path.startswith(key + ".") and isinstance(value, dict):
            found = _lookup(value, path[len(key) + 1 :])
            if found is not None:
                return found
    return None


def render(report: dict[str, Any]) -> str:
    """The report as a plain table: scenario, figure, value."""
    lines = []
    m = report["machine"]
    lines.append(f"{m['cores']} cores, {m['cpu']}, Python {m['python']}, trio {m['trio']}")
    for scenario, figures in report["scenarios"].items():
        lines.append("")
        lines.append(scenario)
        for path, value in _flatten(figures):
            lines.append(f"  {path:<58} {_format(value)}")
    lines.append("")
    lines.append("goals")
    for goal in report["goals"]:
        verdict = {True: "met", False: "NOT MET", None: "no figure"}[goal["met"]]
        lines.append(
            f"  {goal['figure']:<50} {_format(goal['value']):>12}  {goal['goal']:<12} {verdict}"
        )
    return "\n".join(lines)


def _flatten(figures: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows = []
    for key, value in figures.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and key != "failures":
            rows.extend(_flatten(value, path + "."))
        else:
            rows.append((path, value))
    return rows


def _format(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    return str(value)
