"""The cost and the verdicts of `mutate`: programs per sample, wall time per 1,000 samples, and
the strength each kind of test block gets.

    python benchmarks/bench_mutate.py [--samples 164] [--mutants 8] [--workers N] [--timeout S]

Samples are HumanEval+ tasks (the shipped EvalPlus file) written as responses: the canonical
solution is the implementation, and the tests are one of three blocks, each a sample of its own:

- `humaneval`: the task's own `check` function and its call (written by people, many asserts);
- `one_assert`: the task's first base input, asserted equal to the canonical output;
- `no_check`: the call made, its result not checked (`assert f(...) is not None or True`).

Each side runs through `MutateStage.process` on the local sandbox with an empty verdict cache,
so every mutant runs. Prints per side: samples, mutants per sample, programs run, wall time,
samples/s, and the strength distribution (mean, share at 0 and at 1), then how the mutants were
caught (assertion, exception type, timeout). `--samples 4` is its smallest setting (the test
suite runs it).
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from builder.pipeline.step import StepContext
from builder.stages.execute.mutate import MutateParams, MutateStage

DATA = REPO / "builder/data/benchmarks/HumanEvalPlus-v0.1.9.jsonl.gz"
SIDES = ("humaneval", "one_assert", "no_check")


def response(code: str, tests: str) -> str:
    return (f"[Reasoning]\nAs asked.\n\n[Implementation]\n```python\n{code}\n```\n\n"
            f"[Explanation]\nIt does.\n\n[Tests]\n```python\n{tests}\n```\n")  # fmt: skip


def samples(count: int) -> dict[str, list[dict]]:
    with gzip.open(DATA, "rt", encoding="utf-8") as fh:
        tasks = [json.loads(line) for line in fh][:count]
    out: dict[str, list[dict]] = {side: [] for side in SIDES}
    for task in tasks:
        code = task["prompt"] + task["canonical_solution"]
        name, first = task["entry_point"], task["base_input"][0]
        args = ", ".join(repr(a) for a in first)
        expected = _canonical(code, name, first)
        blocks = {
            "humaneval": f"{task['test']}\n\ncheck({name})",
            "one_assert": f"assert {name}({args}) == {expected!r}",
            "no_check": f"assert {name}({args}) is not None or True",
        }
        for side, tests in blocks.items():
            row = {"response": response(code, tests), "exec_status": "pass", "exec_duration_s": 0.1}
            out[side].append({**row, "task_id": task["task_id"]})
    return out


def _canonical(code: str, name: str, args: list):
    namespace: dict = {}
    exec(code, namespace)  # the shipped canonical solutions: trusted, as EvalPlus treats them
    return namespace[name](*args)


def measure(rows: list[dict], mutants: int, workers: int, timeout_s: float) -> dict:
    with tempfile.TemporaryDirectory() as work:
        params = MutateParams(mutants=mutants, workers=workers, timeout_s=timeout_s)
        stage = MutateStage(params, StepContext(work_dir=work))
        try:
            start = time.perf_counter()
            result = stage.process(rows)
            seconds = time.perf_counter() - start
        finally:
            stage.close()
    strengths = [r["test_strength"] for r in result.kept if r["test_strength"] is not None]
    stats = result.stats
    return {
        "samples": len(rows),
        "measured": len(strengths),
        "mutants_per_sample": round(stats["mutants"] / max(1, len(strengths)), 2),
        "programs_run": stats["cache_misses"],
        "wall_s": round(seconds, 1),
        "s_per_1000_samples": round(seconds / len(rows) * 1000),
        "mean_strength": round(statistics.mean(strengths), 3) if strengths else None,
        "share_0": round(sum(s == 0 for s in strengths) / max(1, len(strengths)), 3),
        "share_1": round(sum(s == 1 for s in strengths) / max(1, len(strengths)), 3),
        "caught_by": dict(Counter({k.split(":", 1)[1]: v for k, v in stats.items()
                                   if k.startswith("caught_by:")}).most_common()),  # fmt: skip
    }


# The smallest setting, a run of seconds that the test suite makes (tests/test_benchmarks.py;
# {tmp}: a fresh folder, {port}: a free port, {root}: the repository): a change that breaks the
# script fails CI.
SMALLEST = ["--samples", "4", "--workers", "2"]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=164, help="HumanEval+ tasks (164: all)")
    parser.add_argument("--mutants", type=int, default=8)
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--timeout", type=float, default=MutateParams.timeout_s,
                        help="seconds per mutant (default: the step's)")  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    figures = {}
    for side, rows in samples(args.samples).items():
        figures[side] = measure(rows, args.mutants, args.workers, args.timeout)
        print(f"{side:>10}: {json.dumps(figures[side])}", flush=True)
    return figures


if __name__ == "__main__":
    main()
