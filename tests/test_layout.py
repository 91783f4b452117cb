"""The package layout keeps its promises: no import circles at any depth, imports flowing one
way between the pipeline's stages, modules of a readable size, no catch-all modules.

Imports are read with ``ast`` from every module of ``simulator/``, wherever they stand (module
level, inside functions, under ``if TYPE_CHECKING``), so a circle hidden by a function-level
import is still a circle here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "simulator"

#: The pipeline's stages in the order data flows through them; a module may import only from
#: its own stage or an earlier one (``base``: errors, registry, files; the frontend writes
#: traces, so it stands after workload; validation and the CLI use everything; the RTL stage
#: drives its generated hardware with validation's operand encoding and checks it against
#: the reference and the fast simulator, so it stands after validation; sweeps compress
#: through the frontend, reporting reads the sweep's store).
STAGES = ["base", "workload", "mapping", "hardware", "arch", "engine", "cost", "report",
          "simulation", "frontend", "validation", "rtl", "sweep", "reporting", "cli"]
_STAGE_OF = {"errors": "base", "registry": "base", "files": "base", "console": "cli",
             "printing": "cli", "exploration": "cli",
             "llm": "simulation", "dynamic": "simulation", "memo": "simulation",
             "timeline": "engine",
             "__init__": "cli",
             "__main__": "cli"}


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _resolve(current: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = current.split(".")
    if not is_pkg:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(name: str, path: Path, known: set[str]) -> Iterator[str]:
    """Every ``simulator`` module that ``name`` imports, at any depth of its source."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "simulator":
                    yield alias.name
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(name, is_pkg, node)
            if target.split(".")[0] != "simulator":
                continue
            for alias in node.names:  # ``from pkg import submodule`` imports the submodule
                sub = f"{target}.{alias.name}"
                yield sub if sub in known else target


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: {t for t in imports_of(name, path, known) if t in known and t != name}
            for name, path in mods.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (found := visit(start)):
            return found
    return None


def stage(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "cli"  # the package itself: the public API re-exports every stage
    return _STAGE_OF.get(parts[1], parts[1])


def test_cycle_finder_finds_a_function_level_circle(tmp_path: Path) -> None:
    """The checker itself: a circle closed only inside a function body is found."""
    edges = {"simulator.a": {"simulator.b"}, "simulator.b": {"simulator.c"},
             "simulator.c": {"simulator.a"}}
    assert find_cycle(edges) == ["simulator.a", "simulator.b", "simulator.c", "simulator.a"]
    src = tmp_path / "mod.py"
    src.write_text("def f():\n    from simulator.x import y\n\nif 0:\n    import simulator.z\n")
    assert set(imports_of("simulator.mod", src, {"simulator.x.y"})) == {"simulator.x.y",
                                                                        "simulator.z"}


def test_no_import_cycles_at_any_depth() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_imports_flow_one_way_between_stages() -> None:
    order = {s: i for i, s in enumerate(STAGES)}
    backwards = []
    for mod, targets in graph().items():
        for t in targets:
            if order[stage(t)] > order[stage(mod)]:
                backwards.append(f"{mod} ({stage(mod)}) imports {t} ({stage(t)})")
    assert not backwards, "\n".join(sorted(backwards))


def test_no_module_imports_the_package_api() -> None:
    """``from simulator import X`` inside the package would pull in every stage."""
    offenders = [m for m, targets in graph().items() if "simulator" in targets and m != "simulator"]
    assert offenders == []


@pytest.mark.parametrize("name", sorted(modules()))
def test_module_size_and_name(name: str) -> None:
    path = modules()[name]
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= 420, f"{path} has {lines} lines: split it by noun"
    assert path.stem not in {"utils", "util", "helpers", "misc", "common"}, path
    assert stage(name) in STAGES, f"{name}: unknown stage {stage(name)!r}"
