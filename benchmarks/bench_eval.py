"""Grading wall time: `builder eval --samples` against `evalplus.evaluate`, same file, same data.

    python benchmarks/bench_eval.py [--samples FILE.jsonl] [--kind mixed|canonical]
                                    [--benchmark humaneval+|mbpp+] [--workers 2] [--tasks N]
                                    [--evalplus-parallel 1,2] [--repeat 1] [--canonical-check]

Both sides grade the same sample file (default: one sample per task of the pinned data, either
its canonical solution or a mix of correct, wrong, crashing and slow samples from
evaluation/mixed_samples.py) as separate processes, timed from start to exit. Ground truth is
computed by each side's first run and cached (EvalPlus in its cache folder, we in ours): the first
round is printed as it is, then `--repeat` warm rounds, the best of which is compared. Runs
alternate back to back, so both see the same machine load. Per-task verdicts are compared; a difference is listed with both
verdicts (on a loaded machine, tasks whose canonical inputs take near a time limit can flip on
either side: each side measures its own reference times).

`--canonical-check` grades every canonical solution of HumanEval+ and MBPP+ and prints the
counts (HumanEval/32 fails under EvalPlus 0.3.1's rules; --fix-find-zero grades it as later
EvalPlus does).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from builder.evaluation.evalplus_data import EVALPLUS_BENCHMARKS, SHARED_DATA, read_jsonl_bytes
from evaluation.mixed_samples import CHEAP_KINDS, make_solution, mixed, write_jsonl


def run_timed(command: list[str], env: dict) -> tuple[float, str]:
    start = time.monotonic()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - start
    if done.returncode != 0:
        raise SystemExit(f"{command[:3]} failed:\n{done.stderr[-2000:]}")
    return elapsed, done.stdout


def evalplus_table(results_file: Path) -> dict:
    table = {}
    for task, entries in json.loads(results_file.read_text())["eval"].items():
        e = entries[0]
        table[task] = {"base": "pass" if e["base_status"] == "pass" else "fail",
                       "plus": "pass" if e["base_status"] == e["plus_status"] == "pass" else "fail"}  # fmt: skip
    return table


def scores(stdout: str) -> list[str]:
    return [line.split()[-1] for line in stdout.splitlines() if line.startswith("pass@1")]


# The smallest setting, a run of seconds that the test suite makes (tests/test_benchmarks.py;
# {tmp}: a fresh folder, {port}: a free port, {root}: the repository): a change that breaks the
# script fails CI.
SMALLEST = ["--tasks", "2", "--kind", "canonical", "--evalplus-parallel", "1", "--repeat", "0"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", default="humaneval+", choices=list(EVALPLUS_BENCHMARKS))
    parser.add_argument("--samples", help="a samples file (default: built from --kind)")
    parser.add_argument("--kind", default="mixed", choices=["mixed", "canonical"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--evalplus-parallel", default="1,2", help="evalplus --parallel values")
    parser.add_argument("--repeat", type=int, default=1, help="warm rounds (0: none)")
    parser.add_argument("--canonical-check", action="store_true")
    parser.add_argument("--tasks", type=int, help="only the first N tasks (default: all)")
    args = parser.parse_args(argv)
    # Not under /tmp: the sandboxes mount their own /tmp, and the ground truth must reach them.
    cache = Path("~/.cache/code-instruct-builder").expanduser()
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-eval-", dir=cache))
    try:
        run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args, work: Path) -> None:
    if args.canonical_check:
        return canonical_check(work)
    dataset, pinned = EVALPLUS_BENCHMARKS[args.benchmark]
    data = work / pinned.replace(".gz", "")
    lines = [line for line in read_jsonl_bytes(SHARED_DATA / pinned).decode().splitlines() if line]
    data.write_text("\n".join(lines[: args.tasks]) + "\n")  # both sides grade this file
    problems = [json.loads(line) for line in data.read_text().splitlines() if line.strip()]
    samples = Path(args.samples) if args.samples else work / f"samples-{args.kind}.jsonl"
    if not args.samples:
        rows = (
            mixed(problems, CHEAP_KINDS)
            if args.kind == "mixed"
            else [make_solution(p, "correct") for p in problems]
        )
        write_jsonl(samples, rows)
    env = {**os.environ, "XDG_CACHE_HOME": str(work / "evalplus-cache"), "TOKENIZERS_PARALLELISM": "false",
           "HUMANEVAL_OVERRIDE_PATH": str(data), "MBPP_OVERRIDE_PATH": str(data)}  # fmt: skip
    ours_cmd = [sys.executable, "-m", "builder", "eval", "--samples", str(samples), "--benchmark",
                args.benchmark, "--data-file", str(data), "--workers", str(args.workers),
                "--cache-dir", str(work / "ours-cache"), "--results", str(work / "ours.json")]  # fmt: skip
    sides = {"ours": ours_cmd}
    for parallel in args.evalplus_parallel.split(","):
        sides[f"evalplus --parallel {parallel}"] = [sys.executable, "-m", "evalplus.evaluate", "--dataset",
                                                   dataset, "--samples", str(samples), "--parallel", parallel,
                                                   "--i-just-wanna-run"]  # fmt: skip
    print(
        f"{args.benchmark}: {len(problems)} tasks, samples {samples} ({args.kind if not args.samples else 'given'})"
    )
    print(
        f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start; ours with --workers {args.workers}"
    )
    times: dict[str, list[float]] = {name: [] for name in sides}
    outputs = {}
    for round_index in range(args.repeat + 1):
        for name, command in sides.items():
            (samples.with_name(samples.stem + "_eval_results.json")).unlink(missing_ok=True)
            elapsed, outputs[name] = run_timed(command, env)
            if round_index == 0:
                print(f"  first round (empty caches at its start): {name:24s} {elapsed:7.1f} s")
            if round_index > 0 or args.repeat == 0:  # --repeat 0: the first round is compared
                times[name].append(elapsed)
    rounds = f"best of {args.repeat}" if args.repeat else "none: the first round"
    print(f"warm runs ({rounds}), load average {os.getloadavg()[0]:.2f} at end:")
    base = min(times["ours"])
    for name, values in times.items():
        print(
            f"  {name:24s} {min(values):7.1f} s   pass@1 base/plus {'/'.join(scores(outputs[name]))}"
            + ("" if name == "ours" else f"   ours/this = {base / min(values):.2f}x")
        )
    ours = json.loads((work / "ours.json").read_text())
    theirs = evalplus_table(samples.with_name(samples.stem + "_eval_results.json"))
    diffs = sorted(
        t for t in theirs if theirs[t] != (ours[t] if isinstance(ours[t], dict) else ours[t][0])
    )
    print(
        f"per-task verdicts: {len(theirs) - len(diffs)}/{len(theirs)} equal to the last evalplus run"
    )
    for task in diffs:
        print(f"  {task}: evalplus {theirs[task]}, ours {ours[task]}")


def canonical_check(work: Path) -> None:
    for benchmark, (_, pinned) in EVALPLUS_BENCHMARKS.items():
        problems = [
            json.loads(line)
            for line in read_jsonl_bytes(SHARED_DATA / pinned).decode().splitlines()
            if line.strip()
        ]
        samples = work / f"canonical-{benchmark}.jsonl"
        write_jsonl(samples, [make_solution(p, "correct") for p in problems])
        for extra in ([], ["--fix-find-zero"]) if benchmark == "humaneval+" else ([],):
            out = work / "verdicts.json"
            command = [sys.executable, "-m", "builder", "eval", "--samples", str(samples), "--benchmark",
                       benchmark, "--cache-dir", str(work / "ours-cache"), "--results", str(out), *extra]  # fmt: skip
            elapsed, _ = run_timed(command, dict(os.environ))
            table = json.loads(out.read_text())
            base = sum(v["base"] == "pass" for v in table.values())
            plus = sum(v["plus"] == "pass" for v in table.values())
            failing = sorted(t for t, v in table.items() if v["plus"] != "pass")
            print(
                f"{benchmark} canonical {' '.join(extra) or '(EvalPlus 0.3.1 rules)'}: base {base}/{len(table)}, "
                f"plus {plus}/{len(table)} in {elapsed:.1f} s; not passing: {failing or 'none'}"
            )


if __name__ == "__main__":
    main()
