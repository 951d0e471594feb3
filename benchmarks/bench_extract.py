"""Extraction throughput: files/s and MB/s per core, for 1..N processes, on a real corpus.

    python benchmarks/bench_extract.py [--source python:all] [--procs 1,2]

Runs the whole `extract` stage as `builder run` would (read, parse, checkpoint, dedup, write
shards, publish to a temporary local store) and prints one line per process count. The target
is at least 5 MB/s per core and near-linear scaling.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

from builder.pipeline.recipe import load_recipe
from builder.pipeline.recipe_runner import run_recipe
from builder.stages.extract import ExtractParams, ExtractStage
from builder.store import open_store

TINY = Path(__file__).resolve().parents[1] / "hub_configs" / "tiny.yaml"


def corpus_bytes(source: str) -> tuple[int, int]:
    files = ExtractStage(ExtractParams(source=source)).open_input(inputs=None).files
    return len(files), sum(path.stat().st_size for _, path, _ in files)


def measure(source: str, procs: int) -> tuple[float, float]:
    """Seconds end to end, and seconds of the parallel phase (parse) alone."""
    with tempfile.TemporaryDirectory() as tmp:
        recipe = load_recipe(TINY, [
            f"hub.store=local:{tmp}/store", f"work_dir={tmp}/work",
            f"stages.extract.source={source}", f"stages.extract.num_proc={procs}",
        ])
        started = time.perf_counter()
        run_recipe(recipe, ["extract"])
        elapsed = time.perf_counter() - started
        store = open_store(recipe.hub.store)
        manifest = json.loads(store.read_text("local/tiny-extract", "main", "manifest.json"))
    return elapsed, manifest["timings"]["process_s"]


# The smallest setting, a run of seconds that the test suite makes (tests/test_benchmarks.py;
# {tmp}: a fresh folder, {port}: a free port, {root}: the repository): a change that breaks the
# script fails CI.
SMALLEST = ["--source", "python:stdlib", "--procs", "1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="python:all")
    parser.add_argument("--procs", default="1,2")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    files, size = corpus_bytes(args.source)
    print(f"corpus {args.source}: {files} files, {size / 1e6:.1f} MB")
    print("end to end: list, parse, checkpoint, dedup, write shards, publish; parse: the parallel phase")
    print(f"{'procs':>5} {'seconds':>8} {'files/s':>9} {'MB/s':>7} {'MB/s/core':>10} {'speedup':>8}"
          f" {'parse s':>8} {'parse MB/s/core':>16} {'parse speedup':>14}")
    first = None
    for procs in [int(p) for p in args.procs.split(",")]:
        elapsed, parse = measure(args.source, procs)
        first = first or (elapsed, parse)  # speedups are relative to the first row (--procs 1,...)
        speedup, parse_speedup = first[0] / elapsed, first[1] / parse
        mb_s = size / 1e6 / elapsed
        print(f"{procs:>5} {elapsed:>8.1f} {files / elapsed:>9.0f} {mb_s:>7.1f} {mb_s / procs:>10.1f}"
              f" {speedup:>7.2f}x {parse:>8.1f} {size / 1e6 / parse / procs:>16.1f} {parse_speedup:>13.2f}x")


if __name__ == "__main__":
    main()
