"""Every script in `benchmarks/` runs in the suite at its smallest setting (its `SMALLEST`), so
that a change that breaks one fails CI, not the next person who wants its figures. Scripts are
found by their `__main__` guard; one without a `SMALLEST` fails here."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.helpers import ROOT, TINY, run_cli, smallest_setting, write_corpus

BENCHMARKS = ROOT / "benchmarks"
SCRIPTS = sorted(
    p.name for p in BENCHMARKS.glob("*.py") if 'if __name__ == "__main__":' in p.read_text()
)
# Over 5 s at their smallest (EvalPlus's own start takes ~20 s whatever the size; a Ray cluster
# starts; Pyright, vLLM or a corpus loads): left out of the quick subset, `-m "not slow"`.
SLOW = {
    "bench_eval.py", "bench_executors.py", "bench_typecheck.py", "bench_dedup_reference.py",
    "bench_dedup.py", "bench_generation.py", "bench_train.py",
}
# What a script compares with, where it is not one of our dependencies: skipped without it
# (CI installs it).
NEEDS = {"bench_dedup_reference.py": "text_dedup"}
# Run at their smallest setting by a test that also checks what they print.
DEDICATED = {
    "bench_mutate.py": "tests/test_mutate.py",
    "bench_seeds_reference.py": "tests/test_published_rules.py",
    "funnel.py": "tests/test_benchmarks.py",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_script(name: str, tmp_path) -> subprocess.CompletedProcess:
    args = smallest_setting(BENCHMARKS / name, tmp=tmp_path, port=free_port())
    return subprocess.run(
        [sys.executable, str(BENCHMARKS / name), *args],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


def test_every_script_declares_its_smallest_setting_and_is_run():
    assert len(SCRIPTS) >= 16
    for name in SCRIPTS:
        assert smallest_setting(BENCHMARKS / name, tmp="t", port=1)
    for name, test_file in DEDICATED.items():
        assert name in (ROOT / test_file).read_text(), f"{test_file} does not run {name}"


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=[pytest.mark.slow] if name in SLOW else [])
        for name in SCRIPTS
        if name not in DEDICATED
    ],
)
def test_benchmark_runs_at_its_smallest_setting(name, tmp_path):
    if name in NEEDS:
        pytest.importorskip(NEEDS[name])
    done = run_script(name, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip(), f"{name} printed no figures"


def test_funnel_reads_what_a_run_published(tmp_path):
    """funnel.py on a store where `extract` ran: its row has the counts, the rest are named
    as not published."""
    settings = ["--set", f"hub.store=local:{tmp_path}/store", "--set", "hub.namespace=tester",
                "--set", f"stages.extract.source={write_corpus(tmp_path / 'corpus')}",
                "--set", f"work_dir={tmp_path / 'work'}"]  # fmt: skip
    assert run_cli("run", TINY, "--only", "extract", *settings) == 0
    done = run_script("funnel.py", tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = {line.split("|")[1].strip(): line for line in done.stdout.splitlines()[2:]}
    assert "not published" in lines["filter"] and "not published" not in lines["extract"]
    assert lines["extract"].split("|")[3].strip() not in ("", "0")  # functions kept
