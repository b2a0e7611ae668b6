"""The package's wings import only downward (deferred, function-level imports included) and hold
no import cycle. The floors are the architecture page's (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pianomime_env"

#: Floor of each top-level entry of the package; a module imports its own floor or lower ones.
FLOORS = {
    "extras": 0,
    "sim": 1,
    "music": 1,
    "rewards": 2,
    "demos": 2,
    "control": 3,
    "envs": 4,
    "learning": 5,
    "media": 5,
    "collection": 6,
    "app": 7,
}


def _modules() -> dict[str, Path]:
    mods = {}
    for p in PACKAGE.rglob("*.py"):
        parts = p.relative_to(PACKAGE.parent).with_suffix("").parts
        mods[".".join(parts[:-1] if p.name == "__init__.py" else parts)] = p
    return mods


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """Package modules that ``name`` imports anywhere in its body (resolved to real modules)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + [node.module or ""])
                base = base.rstrip(".")
            else:
                base = node.module or ""
            # ``from pkg import sub`` imports the module ``pkg.sub`` when there is one.
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in mods:
                target = target.rpartition(".")[0]
            if target.startswith("pianomime_env") and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(name, path, mods) for name, path in mods.items()}


def _wing(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None  # None: the package's own __init__


def test_every_wing_has_a_floor():
    wings = {_wing(m) for m in _modules()} - {None}
    assert wings <= set(FLOORS), f"wings without a floor: {sorted(wings - set(FLOORS))}"


def test_no_import_runs_up_the_floors():
    upward = []
    for module, deps in _graph().items():
        wing = _wing(module)
        for dep in deps:
            dep_wing = _wing(dep)
            if dep_wing is None:  # the top package: only the outside (baselines, users) use it
                upward.append(f"{module} -> pianomime_env (the public API at the top)")
            elif wing is not None and FLOORS[dep_wing] > FLOORS[wing]:
                upward.append(
                    f"{module} (floor {FLOORS[wing]}) -> {dep} (floor {FLOORS[dep_wing]})"
                )
    assert not upward, "imports that run up the floors:\n" + "\n".join(sorted(upward))


def test_no_import_cycles():
    graph = _graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append(" -> ".join(stack[stack.index(dep) :] + [dep]))
            elif dep not in state:
                visit(dep, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_wing_graph_is_acyclic():
    # Wings on one floor may import each other's modules only one way.
    edges = {(_wing(m), _wing(d)) for m, deps in _graph().items() for d in deps}
    edges = {(a, b) for a, b in edges if a and b and a != b}
    two_way = sorted(f"{a} <-> {b}" for a, b in edges if (b, a) in edges and a < b)
    assert not two_way, f"wings importing each other: {two_way}"


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from pianomime_env.envs.piano import PianoMimeEnv", "pianomime_env.envs.piano"),
        ("def f():\n    from pianomime_env.music import songs\n", "pianomime_env.music.songs"),
        ("import pianomime_env.sim.scene as s", "pianomime_env.sim.scene"),
    ],
)
def test_the_reader_sees_deferred_and_aliased_imports(tmp_path, source, expected):
    path = tmp_path / "probe.py"
    path.write_text(source)
    assert expected in _imports("pianomime_env.sim.probe", path, _modules())


def test_an_upward_import_is_caught(tmp_path):
    path = tmp_path / "probe.py"
    path.write_text("def f():\n    from pianomime_env.app.cli import main\n")
    deps = _imports("pianomime_env.sim.probe", path, _modules())
    assert any(FLOORS[_wing(d)] > FLOORS["sim"] for d in deps)
