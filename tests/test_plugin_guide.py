"""The plugin guide's whole files work as written: copied into an empty folder, they pass
`pytest` with nothing but `realtime-trio[testing]` installed.

A code block of `docs/writing-a-plugin.md` is a whole file when its first line is a comment
naming the file (`# dice.py`); every other block is a fragment.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "writing-a-plugin.md"
BLOCK = re.compile(r"^```python\n(?P<code>.*?)^```$", re.DOTALL | re.MULTILINE)
FILE_NAME = re.compile(r"# (?P<name>[\w-]+\.py)")


def whole_files() -> dict[str, str]:
    """The guide's whole-file Python blocks, by file name."""
    files = {}
    for block in BLOCK.finditer(GUIDE.read_text(encoding="utf-8")):
        code = block["code"]
        if named := FILE_NAME.fullmatch(code.splitlines()[0]):
            assert named["name"] not in files, f"two blocks are {named['name']}"
            files[named["name"]] = code
    return files


def test_fragments_name_no_file() -> None:
    """Only whole files start with a comment naming a file: no fragment can pass for one."""
    firsts = [block["code"].splitlines()[0] for block in BLOCK.finditer(GUIDE.read_text())]

    assert sorted(first for first in firsts if first.startswith("#")) == sorted(
        f"# {name}" for name in whole_files()
    )


def test_the_guides_files_pass_pytest_in_an_empty_folder(tmp_path: Path) -> None:
    files = whole_files()
    assert {"dice.py", "test_dice.py"} <= set(files)
    expected = 0
    for name, code in files.items():
        (tmp_path / name).write_text(code, encoding="utf-8")
        if name.startswith("test_"):
            expected += sum(
                isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                and node.name.startswith("test_")
                for node in ast.parse(code).body
            )
    # The developer's pytest options and import paths stay out: only what a plugin author has.
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("PYTEST_") and name != "PYTHONPATH"
    }

    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(rf"{expected} passed in [\d.]+s", summary), result.stdout
