"""Mutation testing: break the code one small change at a time, in a copy of the tree, and see
whether the tests notice. Not part of the test suite: it takes tens of minutes.

    python benchmarks/mutation.py run [--module builder/store/local.py ...] [--out DIR]
    python benchmarks/mutation.py breaks [--only NAME ...]   # the hand-made breaks of issue 17
    python benchmarks/mutation.py list [--module ...]        # the mutants, without running
    python benchmarks/mutation.py check                      # every module and break still fits

`run` copies the repository's files (tracked and untracked, not ignored) to a temporary folder,
runs the test pool there once under coverage, recording which test runs which line (in the
test's process and in every process it starts: workers, `builder` subprocesses), then for each
mutant (`mutation_ops.py`) writes the mutated file into the copy and runs, with `-x`, only the
tests that ran its lines (else those that ran its function, else its module). A mutant is
`killed` when a test fails (or the run times out), `survived` when all pass, `uncovered` when
no test of the pool runs its code. Results go to DIR/results.jsonl (a rerun skips mutants
already there: --again starts over, --survivors runs those not killed again, e.g. after
new tests), and a summary per module to stdout. The sandbox worker runs inside bubblewrap, out of coverage's reach: its mutants run a
fixed list of sandbox tests.

`breaks` applies each of the issue's hand-made breaks (one at a time, in a copy) and runs the
tests meant to catch it, printing the ones that failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from xml.etree import ElementTree

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutation_breaks import BREAKS
from mutation_ops import Mutant, mutants

ROOT = Path(__file__).resolve().parents[1]
MODULES = {  # module -> the functions to mutate (empty: all)
    "builder/store/local.py": (),
    "builder/store/local_records.py": (),
    "builder/store/files.py": (),
    "builder/pipeline/step_runner.py": (),
    "builder/pipeline/publish.py": (),
    "builder/pipeline/rows.py": (),
    "builder/pipeline/checkpoint.py": (),
    "builder/engines/cache.py": (),
    "builder/sandbox/verdict_cache.py": (),
    "builder/sandbox/_worker.py": ("_verdict", "run_one", "_watch"),
    "builder/sandbox/_child.py": ("run_child", "_report"),
}
POOL = [  # the tests that may kill them (coverage picks among these per mutant)
    "tests/test_store.py", "tests/test_store_durability.py", "tests/test_store_integrity.py",
    "tests/test_pipeline.py", "tests/test_reliability.py", "tests/test_staleness.py",
    "tests/test_resume.py", "tests/test_cache.py", "tests/test_execute.py",
    "tests/test_generation_witness.py", "tests/test_extract.py", "tests/test_select.py",
    "tests/test_store_guarantees.py", "tests/test_runner_guarantees.py",
    "tests/test_publish_guarantees.py",
]  # fmt: skip
OTHERS = 12  # tests besides the module's own tried on each of its mutants
OWN_TESTS = {  # tried first for a module's mutants
    "builder/store/local.py": ("tests/test_store",),
    "builder/store/local_records.py": ("tests/test_store",),
    "builder/store/files.py": ("tests/test_store",),
    "builder/pipeline/step_runner.py": (
        "tests/test_runner_guarantees", "tests/test_pipeline", "tests/test_reliability"
    ),
    "builder/pipeline/publish.py": (
        "tests/test_publish_guarantees", "tests/test_pipeline", "tests/test_store_durability"
    ),
    "builder/pipeline/rows.py": (
        "tests/test_runner_guarantees", "tests/test_pipeline", "tests/test_reliability"
    ),
    "builder/pipeline/checkpoint.py": (
        "tests/test_runner_guarantees", "tests/test_reliability", "tests/test_pipeline"
    ),
    "builder/engines/cache.py": ("tests/test_cache",),
    "builder/sandbox/verdict_cache.py": ("tests/test_execute",),
}
SANDBOX_TESTS = [
    "tests/test_sandbox_local.py::test_forged_report_never_passes",
    "tests/test_sandbox_local.py::test_early_exit_never_passes",
    "tests/test_sandbox_local.py::test_verdicts_and_input_order",
    "tests/test_sandbox_local.py::test_specific_limit_messages",
    "tests/test_sandbox_local.py::test_resource_battery",
    "tests/test_sandbox_local.py::test_asserts_are_on",
    "tests/test_sandbox_local.py::test_humaneval_correct_pass_and_wrong_fail",
]
# Modules coverage cannot see (they run inside bubblewrap): a fixed list of tests, the quick
# ones first, then the whole local battery (limits, forks, harness failures, isolation).
UNMEASURED = {
    "builder/sandbox/_worker.py": [*SANDBOX_TESTS, "tests/test_sandbox_local.py"],
    "builder/sandbox/_child.py": [*SANDBOX_TESTS, "tests/test_sandbox_local.py"],
}
PLUGIN = """
import os
import coverage
import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    os.environ["MUTATION_TEST"] = item.nodeid  # the static context of processes it starts
    cov = coverage.Coverage.current()
    if cov is not None:
        cov.switch_context(item.nodeid)
    yield
    os.environ["MUTATION_TEST"] = ""
    if cov is not None:
        cov.switch_context("")
"""
RCFILE = """
[run]
branch = False
parallel = True
data_file = {data}
source = builder
context = ${{MUTATION_TEST}}
concurrency = thread, multiprocessing
sigterm = True
"""


def copy_tree(dest: Path) -> Path:
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode()  # fmt: skip
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def environment(copy: Path, **extra: str) -> dict:
    return {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1", **extra}


def pytest_command(tests: list[str], *options: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *options, *tests]


# ------------------------------------------------------------------------- coverage map


def coverage_map(copy: Path, out: Path) -> tuple[dict, dict]:
    """({file: {line: [test ids]}}, {test id: seconds}), from one run of the pool."""
    cached = out / "coverage-map.json"
    if cached.exists():
        data = json.loads(cached.read_text())
        return data["lines"], data["durations"]
    work = copy / ".mutation"
    work.mkdir(exist_ok=True)
    (work / "mutation_plugin.py").write_text(PLUGIN)
    rc = work / "coveragerc"
    rc.write_text(RCFILE.format(data=work / ".coverage"))
    env = environment(copy, COVERAGE_PROCESS_START=str(rc), MUTATION_TEST="",
                      PYTHONPATH=f"{copy}{os.pathsep}{work}")  # fmt: skip
    junit = work / "junit.xml"
    command = [sys.executable, "-m", "coverage", "run", f"--rcfile={rc}", "-m", "pytest", "-q",
               "-p", "no:cacheprovider", "-p", "mutation_plugin", f"--junitxml={junit}", *POOL]  # fmt: skip
    started = time.monotonic()
    subprocess.run(command, cwd=copy, env=env, check=False)
    print(f"coverage map: pool ran in {time.monotonic() - started:.0f} s", flush=True)
    subprocess.run([sys.executable, "-m", "coverage", "combine", f"--rcfile={rc}"], cwd=copy,
                   env=env, check=True, capture_output=True)  # fmt: skip
    import coverage

    data = coverage.CoverageData(basename=str(work / ".coverage"))
    data.read()
    lines: dict[str, dict[int, list[str]]] = {}
    for module in MODULES:
        measured = data.contexts_by_lineno(str(copy / module))
        lines[module] = {
            line: sorted({part for c in contexts for part in c.split("|") if "::" in part})
            for line, contexts in measured.items()
        }
    durations, failing = {}, []
    for case in ElementTree.parse(junit).iter("testcase"):
        path = case.get("classname", "").replace(".", "/") + ".py"
        test = f"{path}::{case.get('name')}"
        durations[test] = float(case.get("time", 0))
        if case.find("failure") is not None or case.find("error") is not None:
            failing.append(test)
    if failing:  # failing without a mutant: they would "kill" every mutant they are tried on
        print(f"left out, failing on the unmutated code: {failing}", flush=True)
        for by_line in lines.values():
            for line, tests in by_line.items():
                by_line[line] = [t for t in tests if t not in failing]
    cached.write_text(json.dumps({"lines": lines, "durations": durations}))
    return lines, durations


def tests_for(mutant: Mutant, lines: dict, all_mutants: list[Mutant]) -> list[str]:
    if mutant.path in UNMEASURED:
        return UNMEASURED[mutant.path]
    covered = lines.get(mutant.path, {})

    def of(line_numbers) -> set[str]:
        return {t for n in line_numbers for t in covered.get(str(n), covered.get(n, []))}

    found = of(range(mutant.line, mutant.end_line + 1))
    if not found and mutant.function:
        same = [m for m in all_mutants if m.function == mutant.function]
        found = of(n for m in same for n in range(m.line, m.end_line + 1))
    if not found and not mutant.function:
        found = of(covered.keys())
    return sorted(found)


def ordered(tests: list[str], module: str, durations: dict, every: bool = False) -> list[str]:
    """The module's own tests that run the mutant, quickest first, then the OTHERS quickest
    of the rest (the store runs in nearly every test: all of them would take minutes per
    mutant); a test's `[hf]` variant left out where its `[local]` one runs."""
    local = {t.replace("[local]", "") for t in tests if "[local]" in t}
    tests = [t for t in tests if not ("[hf]" in t and t.replace("[hf]", "") in local)]
    own = OWN_TESTS.get(module, ())
    if not own:
        return sorted(tests, key=lambda t: durations.get(t, 30.0))
    mine = sorted((t for t in tests if t.startswith(own)), key=lambda t: durations.get(t, 30.0))
    others = sorted(
        (t for t in tests if not t.startswith(own)), key=lambda t: durations.get(t, 30.0)
    )
    return mine + (others if every else others[:OTHERS])


# ------------------------------------------------------------------------------ running


def run_tests(copy: Path, tests: list[str], timeout_s: float, stop_first: bool = True):
    """(return code or None on timeout, the failed tests, seconds). A run over its time gets
    Ctrl-C first, so that fixtures clean up (unmount, stop servers), then SIGKILL."""
    started = time.monotonic()
    options = ["-x"] if stop_first else []
    process = subprocess.Popen(pytest_command(tests, *options, "-rf"), cwd=copy,
                               env=environment(copy), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)  # fmt: skip
    try:
        output, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
        return None, [], time.monotonic() - started
    failed = [line.split()[1] for line in output.splitlines()
              if line.startswith(("FAILED ", "ERROR "))]  # fmt: skip
    return process.returncode, failed, time.monotonic() - started


def write_source(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    for stale in (path.parent / "__pycache__").glob(f"{path.stem}.*.pyc"):
        stale.unlink()


def run_mutants(args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_file = out / "results.jsonl"
    if args.again:
        results_file.unlink(missing_ok=True)
    if args.survivors and results_file.exists():  # run the survivors again (new tests)
        kept = [line for line in results_file.open() if json.loads(line)["status"] == "killed"]
        results_file.write_text("".join(kept))
        (out / "coverage-map.json").unlink(missing_ok=True)
    done = (
        {json.loads(line)["id"] for line in results_file.open()} if results_file.exists() else set()
    )
    with tempfile.TemporaryDirectory(prefix="mutation-") as tmp:
        copy = copy_tree(Path(tmp))
        lines, durations = coverage_map(copy, out)
        for module in args.module or list(MODULES):
            source = (copy / module).read_bytes()
            found = mutants(module, source, MODULES[module])
            print(f"{module}: {len(found)} mutants", flush=True)
            for mutant in found:
                if mutant.id in done:
                    continue
                tests = ordered(tests_for(mutant, lines, found), module, durations, args.all_tests)
                result = {"id": mutant.id, "module": module, "line": mutant.line,
                          "function": mutant.function, "operator": mutant.operator,
                          "description": mutant.description, "tests": len(tests)}  # fmt: skip
                if not tests:
                    result.update(status="uncovered", seconds=0)
                else:
                    budget = 60 + 3 * sum(durations.get(t, 30.0) for t in tests)
                    write_source(copy / module, mutant.apply(source))
                    try:
                        code, failed, seconds = run_tests(copy, tests, budget)
                    finally:
                        write_source(copy / module, source)
                    status = "timeout" if code is None else "survived" if code == 0 else "killed"
                    result.update(status=status, killed_by=failed[:1], seconds=round(seconds, 1))
                print(f"  {result['status']:9} {module}:{mutant.line} {mutant.operator} "
                      f"{mutant.description[:60]} ({result['seconds']} s)", flush=True)  # fmt: skip
                with results_file.open("a") as handle:
                    handle.write(json.dumps(result) + "\n")
    summarise(results_file)


def summarise(results_file: Path) -> None:
    results = [json.loads(line) for line in results_file.open()]
    by_module = defaultdict(lambda: defaultdict(int))
    for r in results:
        by_module[r["module"]][r["status"]] += 1
    print(f"\n{'module':45} mutants killed timeout survived uncovered kill-rate")
    totals = defaultdict(int)
    for module, counts in by_module.items():
        for key, value in counts.items():
            totals[key] += value
        _row(module, counts)
    _row("all", totals)
    print(f"time: {sum(r['seconds'] for r in results) / 60:.1f} min of test runs")


def _row(name: str, counts: dict) -> None:
    total = sum(counts.values())
    killed = counts["killed"] + counts["timeout"]
    print(f"{name:45} {total:7} {counts['killed']:6} {counts['timeout']:7} "
          f"{counts['survived']:8} {counts['uncovered']:9} {killed / total:9.1%}")  # fmt: skip


# ------------------------------------------------------------------------------- breaks


def run_breaks(args) -> None:
    with tempfile.TemporaryDirectory(prefix="breaks-") as tmp:
        copy = copy_tree(Path(tmp))
        for name, module, old, new, tests in BREAKS:
            if args.only and name not in args.only:
                continue
            source = (copy / module).read_bytes()
            if source.count(old.encode()) != 1:
                print(f"{name}: the text to break is not (once) in {module}; update the break")
                continue
            write_source(copy / module, source.replace(old.encode(), new.encode()))
            try:
                code, failed, seconds = run_tests(copy, tests, 1800, stop_first=False)
            finally:
                write_source(copy / module, source)
            verdict = "CAUGHT" if code not in (0, None) and failed else "NOT CAUGHT"
            print(f"{name}: {verdict} in {seconds:.0f} s by {len(failed)} tests", flush=True)
            for test in failed:
                print(f"    {test}")


def check(args) -> None:
    """Without running any test: every module to mutate still exists and yields mutants, and
    every hand-made break still finds its text once in its module (a break whose text moved
    would otherwise only be reported when `breaks` runs). Exits 1 on a stale entry."""
    stale = []
    for module, functions in MODULES.items():
        path = ROOT / module
        found = mutants(module, path.read_bytes(), functions) if path.exists() else []
        print(f"{module}: {len(found)} mutants")
        if not found:
            stale.append(f"{module}: missing, or nothing to mutate")
    for name, module, old, _new, tests in BREAKS:
        path = ROOT / module
        count = path.read_text().count(old) if path.exists() else 0
        missing = [t for t in tests if not (ROOT / t.partition("::")[0]).exists()]
        print(f"break {name!r}: its text {count} time(s) in {module}")
        if count != 1 or missing:
            stale.append(f"break {name!r}: text found {count} times in {module}, missing tests "
                         f"{missing}")  # fmt: skip
    for line in stale:
        print(f"STALE {line}")
    if stale:
        raise SystemExit(1)


def list_mutants(args) -> None:
    for module in args.module or list(MODULES):
        found = mutants(module, (ROOT / module).read_bytes(), MODULES[module])
        print(f"{module}: {len(found)} mutants")
        for m in found:
            print(f"  {m.line:4} {m.function or '-':28} {m.operator:8} {m.description[:70]}")


# The smallest setting, a run of seconds that the test suite makes (tests/test_benchmarks.py;
# {tmp}: a fresh folder, {port}: a free port, {root}: the repository): a change that breaks the
# script fails CI.
SMALLEST = ["check"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("--module", action="append", choices=list(MODULES))
    run.add_argument("--out", default=str(ROOT / ".builder" / "mutation"))
    run.add_argument("--again", action="store_true", help="forget earlier results")
    run.add_argument("--all-tests", action="store_true",
                     help="every test that runs a mutant's code, not only OTHERS of them")  # fmt: skip
    run.add_argument("--survivors", action="store_true",
                     help="run the mutants not killed before again, with a new coverage map")  # fmt: skip
    run.set_defaults(handler=run_mutants)
    breaks = sub.add_parser("breaks")
    breaks.add_argument("--only", action="append")
    breaks.set_defaults(handler=run_breaks)
    listing = sub.add_parser("list")
    listing.add_argument("--module", action="append", choices=list(MODULES))
    listing.set_defaults(handler=list_mutants)
    sub.add_parser("check").set_defaults(handler=check)
    args = parser.parse_args()
    args.handler(args)


if __name__ == "__main__":
    main()
