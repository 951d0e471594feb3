"""Throughput of the sandboxes against a fresh `python -c` per sample (no isolation).

    python benchmarks/bench_sandbox.py [--backend local] [--backend docker] [--samples 300]
                                       [--workers N] [--repeat 3]

Every side runs HumanEval+ canonical programs (prompt + solution + check) with the same
concurrency (default: one per usable CPU) and reports samples/s, median and best of `--repeat`
rounds that take turns (so that a change in the machine's load hits every side alike).
The docker backend needs a running docker daemon (as root: `dockerd &`).
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from builder.sandbox import Program, SandboxLimits, get_sandbox

log = logging.getLogger("bench_sandbox")
DATA = REPO / "builder/data/benchmarks/HumanEvalPlus-v0.1.9.jsonl.gz"
ISOLATION = {"local": "bwrap", "docker": "containers"}


def load_programs(path: Path, count: int) -> list[Program]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        tasks = [json.loads(line) for line in fh]
    programs = []
    while len(programs) < count:
        for task in tasks[: count - len(programs)]:
            solution = task["prompt"] + task["canonical_solution"]
            code = f"{solution}\n\n{task['test']}\n\ncheck({task['entry_point']})\n"
            programs.append(Program(f"{task['task_id']}#{len(programs)}", code))
    return programs


def run_fresh_python(programs: list[Program], workers: int, timeout_s: float) -> int:
    def one(program: Program) -> bool:
        try:
            done = subprocess.run(
                [sys.executable, "-c", program.code],
                check=False,
                capture_output=True,
                timeout=timeout_s,
            )
        except subprocess.TimeoutExpired:
            return False
        return done.returncode == 0

    with ThreadPoolExecutor(workers) as pool:
        return sum(pool.map(one, programs))


def interleaved(runners: dict, repeat: int, count: int) -> dict[str, list[float]]:
    """samples/s of every runner, round by round: a load change on a shared machine then
    hits every side alike, not just the one that happened to run at that moment."""
    rates: dict[str, list[float]] = {label: [] for label in runners}
    for round_no in range(repeat):
        for label, func in runners.items():
            start = time.perf_counter()
            passed = func()
            rate = count / (time.perf_counter() - start)
            log.info("%s round %d: %.1f samples/s (%d/%d passed)", label, round_no + 1, rate,
                     passed, count)  # fmt: skip
            rates[label].append(rate)
    return rates


# The smallest setting, a run of seconds that the test suite makes (tests/test_benchmarks.py;
# {tmp}: a fresh folder, {port}: a free port, {root}: the repository): a change that breaks the
# script fails CI.
SMALLEST = ["--samples", "6", "--repeat", "1", "--workers", "2"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="HumanEval+ jsonl.gz")
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument(
        "--backend", action="append", choices=("local", "docker"), help="default: local"
    )
    args = parser.parse_args()
    backends = args.backend or ["local"]
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    programs = load_programs(args.data, args.samples)
    n = len(programs)
    limits = SandboxLimits(timeout_s=args.timeout)
    runners = {"fresh python -c (no isolation)": lambda: run_fresh_python(
        programs, args.workers, args.timeout
    )}  # fmt: skip
    with ExitStack() as stack:
        for backend in backends:
            start = time.perf_counter()
            sandbox = stack.enter_context(get_sandbox(backend, limits=limits, workers=args.workers))
            log.info("%s sandbox started in %.2fs", backend, time.perf_counter() - start)
            runners[f"{backend} sandbox ({ISOLATION[backend]})"] = lambda sandbox=sandbox: sum(
                r.passed for r in sandbox.run(programs)
            )
        rates = interleaved(runners, args.repeat, n)
    baseline = statistics.median(rates["fresh python -c (no isolation)"])
    print(f"samples: {n}, concurrency: {args.workers}, {args.repeat} interleaved rounds")
    print(f"{'samples/s':<34}{'median':>10}{'best':>10}{'median vs fresh':>18}")
    for label, values in rates.items():
        median = statistics.median(values)
        print(f"{label:<34}{median:>10.1f}{max(values):>10.1f}{median / baseline:>17.1f}x")


if __name__ == "__main__":
    main()
