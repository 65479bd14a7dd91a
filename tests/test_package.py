"""The package's shape: its public face, its import graph, and the simulator's one-way border.

- `realtime_trio.__all__` names only what exists, each thing documented, nothing private.
- No module imports another that imports it back, however far round (imports at module level
  and inside functions alike), found by reading every module's import statements.
- The server never imports the simulator or the OpenAI SDK: importing `realtime_trio`, its
  CLI module or its server loads neither; only the demo and the test fixtures join them.
"""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import realtime_trio

PACKAGE = Path(realtime_trio.__file__).resolve().parent
PUBLIC_MODULES = {"cli", "hookspecs", "serve", "simulator", "testing"}
# Where the server and the simulator may meet: the demo plays the app against both, and the
# fixtures for plugin authors start both.
JOINING_MODULES = {"realtime_trio._demo", "realtime_trio.testing"}


def test_everything_exported_exists_is_documented_and_public() -> None:
    exported = realtime_trio.__all__

    assert exported == sorted(exported, key=lambda name: (not name[0].isupper(), name))
    assert len(set(exported)) == len(exported)
    package_doc = realtime_trio.__doc__ or ""
    for name in exported:
        assert hasattr(realtime_trio, name), name
        assert not name.startswith("_") or name == "__version__", name
        value = getattr(realtime_trio, name)
        if inspect.isclass(value):
            assert (value.__dict__.get("__doc__") or "").strip(), f"{name} has no docstring"
        elif inspect.isfunction(value):
            assert (value.__doc__ or "").strip(), f"{name} has no docstring"
        else:
            assert f"`{name}`" in package_doc, f"{name} is not described in the package docs"


def test_nothing_public_is_left_out_of_all() -> None:
    public = {
        name
        for name, value in vars(realtime_trio).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }

    assert public == set(realtime_trio.__all__) - {"__version__"}


def test_modules_are_private_except_the_public_ones() -> None:
    top_level = {
        path.stem if path.is_file() else path.name
        for path in PACKAGE.iterdir()
        if (path.suffix == ".py" or (path / "__init__.py").is_file())
    }

    assert {name for name in top_level if not name.startswith("_")} == PUBLIC_MODULES


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = import_graph()

    cycles = [component for component in strongly_connected(graph) if len(component) > 1]
    assert cycles == []
    assert all(module not in graph[module] for module in graph)


def test_only_the_demo_and_the_fixtures_join_the_server_and_the_simulator() -> None:
    for module, imported in import_graph(with_external=True).items():
        if module.startswith("realtime_trio.simulator") or module in JOINING_MODULES:
            continue
        if module == "realtime_trio.cli":
            # The command runs the simulator and the demo: imported only when asked to.
            imported = {name for name, level in imports_of(module) if level == "module"}
        reached = {
            name
            for name in imported
            if name.startswith("realtime_trio.simulator")
            or name in JOINING_MODULES
            or name.split(".")[0] == "openai"
        }
        assert reached == set(), f"{module} imports {reached}"


def test_importing_the_server_loads_neither_the_simulator_nor_the_sdk_nor_the_store_client() -> (
    None
):
    probe = (
        "import sys, realtime_trio, realtime_trio.cli, realtime_trio.serve\n"
        "print(sorted(m for m in sys.modules if m.startswith('realtime_trio.simulator')"
        " or m.startswith(('realtime_trio._valkey', 'realtime_trio._mcp._connection'))"
        " or m.split('.')[0] in ('openai', 'glide', 'mcp', 'mcp_types', 'jsonschema')))\n"
    )

    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )

    assert loaded.stdout.strip() == "[]"


# -- reading the import graph -----------------------------------------------------------------


def module_files() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its `__init__.py`)."""
    files = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        files[".".join(parts)] = path
    return files


def imports_of(module: str) -> Iterator[tuple[str, str]]:
    """(imported name, where) for every import statement in *module* that runs, with relative
    imports resolved; *where* is "module" (at import time) or "function" (when called).

    `from X import y` imports the module `X.y` when there is one, else the names of `X`.
    Imports under `if TYPE_CHECKING:` are left out: they load nothing.
    """
    modules = module_files()
    path = modules[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(), filename=str(path))
    type_only = {
        id(node)
        for top in tree.body
        if isinstance(top, ast.If) and ast.unparse(top.test) in TYPE_CHECKING_TESTS
        for node in ast.walk(top)
    }
    in_functions = {
        id(node)
        for function in ast.walk(tree)
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef)
        for node in ast.walk(function)
    }
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        where = "function" if id(node) in in_functions else "module"
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, where
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                yield (submodule if submodule in modules else base), where


TYPE_CHECKING_TESTS = {"TYPE_CHECKING", "typing.TYPE_CHECKING"}


def import_graph(*, with_external: bool = False) -> dict[str, set[str]]:
    """Each module's imports: modules of the package (and, if asked, top-level names of
    others)."""
    modules = module_files()
    graph: dict[str, set[str]] = {}
    for module in modules:
        edges = set()
        for name, _ in imports_of(module):
            if name in modules and name != module:
                edges.add(name)
            elif with_external and not name.startswith("realtime_trio"):
                edges.add(name.split(".")[0])
        graph[module] = edges
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of *graph* (iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(component)
    return components
