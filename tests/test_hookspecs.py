"""Every hook spec has a test that exercises it and a row in the plugin guide's hooks table.

The tests are found by name (`test_hook_<spec>`, anywhere under `tests/`); each exercises its
hook over a running server. A row of the table names the hook with its arguments in code, as in
`rt_tool_result(session_id, tool, call_id, output)`, and they must be the spec's.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

from realtime_trio import hookspecs

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
GUIDE = ROOT / "docs" / "writing-a-plugin.md"
HOOK_ROW = re.compile(r"^\|\s*`(?P<name>rt_\w+)\((?P<args>[^)]*)\)`\s*\|")


def _specs() -> dict[str, list[str]]:
    """Each spec's name and its arguments, from the hookspecs module."""
    marker = f"{hookspecs.PROJECT}_spec"
    return {
        name: list(inspect.signature(function).parameters)
        for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
        if name.startswith("rt_") and hasattr(function, marker)
    }


def _test_names() -> set[str]:
    names = set()
    for path in TESTS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                names.add(node.name)
    return names


def _documented() -> dict[str, list[str]]:
    """The rows of the guide's hooks table: each hook's name and its arguments."""
    section = GUIDE.read_text(encoding="utf-8").split("\n## Hooks\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        if match := HOOK_ROW.match(line):
            rows[match["name"]] = [a.strip() for a in match["args"].split(",") if a.strip()]
    return rows


SPECS = _specs()


def test_the_specs_are_found() -> None:
    assert set(SPECS) >= {"rt_register_tools", "rt_tool_result"}


@pytest.mark.parametrize("spec", sorted(SPECS))
def test_every_hook_has_a_test(spec: str) -> None:
    assert f"test_hook_{spec}" in _test_names(), f"no test_hook_{spec} under tests/"


@pytest.mark.parametrize("spec", sorted(SPECS))
def test_every_hook_has_a_row_in_the_guide_with_its_arguments(spec: str) -> None:
    documented = _documented()

    assert spec in documented, f"no row for {spec} in the hooks table of {GUIDE.name}"
    assert documented[spec] == SPECS[spec]


def test_the_guide_documents_only_hooks_that_exist() -> None:
    assert sorted(set(_documented()) - set(SPECS)) == []
