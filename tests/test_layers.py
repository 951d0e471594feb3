"""The import structure of `builder/`: every module sits on a floor and imports only from its
own floor or below, and no modules import each other in a cycle. Every import statement counts,
also one inside a function or under `TYPE_CHECKING` (the registry's lazy "module:Class" strings
are not imports, and are how a lower floor names a class above it).

    python tests/test_layers.py      # prints every cycle and upward import, exits 1 if any

A new module is placed by its package (or, in `pipeline/`, by its name) in FLOORS; one that no
entry covers fails the test, so that where it sits is a decision, not an accident.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Bottom first. A module belongs to the floor of the longest prefix that names it.
FLOORS: list[tuple[str, ...]] = [
    ("builder", "builder.errors", "builder.registry", "builder.data"),
    ("builder.config", "builder.store"),
    ("builder.sandbox", "builder.engines", "builder.rl"),
    # pipeline/: the chunk data types at the bottom, the whole recipe's run at the top
    ("builder.pipeline.chunk_data", "builder.pipeline.resources", "builder.pipeline.measured",
     "builder.pipeline.versions", "builder.pipeline.shards", "builder.pipeline.dataset_card",
     "builder.pipeline.work_dir", "builder.pipeline.publish"),
    ("builder.pipeline.checkpoint", "builder.pipeline.input_sources"),
    ("builder.pipeline.executors.config", "builder.pipeline.executors.base"),
    ("builder.pipeline.executors", "builder.pipeline.folder_input"),
    ("builder.pipeline.step",),
    ("builder.pipeline.rows",),
    ("builder.pipeline.recipe",),
    ("builder.pipeline.repo_names", "builder.pipeline.input_opener"),
    ("builder.pipeline.step_runner",),
    ("builder.pipeline.plan", "builder.pipeline.plan_report", "builder.pipeline.recipe_runner"),
    ("builder.evaluation",),
    ("builder.stages",),
    ("builder.cli", "builder.__main__"),
]  # fmt: skip


def modules(root: Path = ROOT) -> dict[str, Path]:
    found = {}
    for path in sorted((root / "builder").rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the modules of `builder` it imports, anywhere in its file."""
    edges: dict[str, set[str]] = defaultdict(set)
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*up, *([base] if base else [])])
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base
                           for a in node.names]  # fmt: skip
            else:
                continue
            for target in targets:
                while target not in mods and "." in target:
                    target = target.rpartition(".")[0]
                if target in mods and target != name and target.startswith("builder"):
                    edges[name].add(target)
    return edges


def floor_of(module: str) -> int | None:
    best, floor = -1, None
    for index, prefixes in enumerate(FLOORS):
        for prefix in prefixes:
            covers = module == prefix or module.startswith(prefix + ".")
            if covers and len(prefix) > best and (prefix != "builder" or module == "builder"):
                best, floor = len(prefix), index
    return floor


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other, directly or around a loop."""
    import networkx

    graph = networkx.DiGraph([(source, target) for source, ts in edges.items() for target in ts])
    groups = networkx.strongly_connected_components(graph)
    return sorted(sorted(group) for group in groups if len(group) > 1)


def problems(root: Path = ROOT) -> list[str]:
    mods = modules(root)
    edges = imports(mods)
    found = [f"no floor for {m} (place it in FLOORS)" for m in mods if floor_of(m) is None]
    for source in sorted(edges):
        for target in sorted(edges[source]):
            low, high = floor_of(target), floor_of(source)
            if low is not None and high is not None and low > high:
                found.append(f"upward import: {source} (floor {high}) -> {target} (floor {low})")
    found += ["import cycle: " + " <-> ".join(c) for c in cycles(edges)]
    return found


def test_no_import_cycle_and_no_upward_import_in_builder():
    assert problems() == []


def test_the_check_sees_an_upward_import_a_deferred_one_and_a_cycle(tmp_path):
    package = tmp_path / "builder"
    for folder in ("pipeline", "store", "stages"):
        (package / folder).mkdir(parents=True)
        (package / folder / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "store" / "base.py").write_text("def f():\n    from builder.stages import x\n")
    (package / "stages" / "x.py").write_text("from builder.store import base\n")
    (package / "pipeline" / "rows.py").write_text("from . import step\n")
    (package / "pipeline" / "step.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from builder.pipeline import rows\n"
    )
    found = problems(tmp_path)
    assert "upward import: builder.store.base (floor 1) -> builder.stages.x (floor 14)" in found
    assert "upward import: builder.pipeline.step (floor 7) -> builder.pipeline.rows (floor 8)" in (
        found
    )
    assert "import cycle: builder.stages.x <-> builder.store.base" in found
    assert "import cycle: builder.pipeline.rows <-> builder.pipeline.step" in found


if __name__ == "__main__":
    report = problems()
    print("\n".join(report) or f"{len(modules())} modules: no import cycle, no upward import")
    sys.exit(1 if report else 0)
