"""`kill -9` in the middle of `extract`, then the same command again: the rows equal an
uninterrupted run's, none lost or duplicated, and finished chunks are not redone."""

import importlib.util
import logging
import os
import re
import signal
import subprocess
import sys
import sysconfig
import time

from builder.store import open_store
from tests.helpers import ROOT, TINY, export_rows, run_cli


def corpus_dirs() -> str:
    """The standard library plus a few large packages this environment has."""
    dirs = [sysconfig.get_paths()["stdlib"]]
    for name in ("numpy", "networkx", "pyarrow"):
        spec = importlib.util.find_spec(name)
        if spec and spec.submodule_search_locations:
            dirs.append(list(spec.submodule_search_locations)[0])
    return ",".join(dirs)


def settings(name, store_uri, work_dir, source):
    return ["--set", f"name={name}", "--set", f"hub.store={store_uri}",
            "--set", "hub.namespace=tester", "--set", f"work_dir={work_dir}",
            "--set", f"stages.extract.source={source}", "--set", "stages.extract.num_proc=2"]


def test_kill_9_mid_extract_then_rerun_equals_an_uninterrupted_run(store_uri, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    source = corpus_dirs()
    name = f"resume{store_uri[:2]}"
    work = tmp_path / "work"
    args = settings(name, store_uri, work, source)
    process = subprocess.Popen(
        [sys.executable, "-m", "builder", "run", str(TINY), "--only", "extract", *args],
        cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while len(list(work.glob("*/*/chunks/*.json"))) < 8:
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "extract made no progress"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # the runner and its workers, with no cleanup
    process.wait()
    finished_before = len(list(work.glob("*/*/chunks/*.json")))
    repo = f"tester/{name}-extract"
    assert not open_store(store_uri).repo_exists(repo)  # nothing half-published

    assert run_cli("run", TINY, "--only", "extract", *args) == 0
    processed, reused = _chunk_counts(caplog.text)[-1]
    assert reused == finished_before  # every chunk finished before the kill is reused
    resumed = export_rows(store_uri, repo, tmp_path / "a")

    clean_args = settings(name + "clean", f"local:{tmp_path / 'clean-store'}", tmp_path / "w2", source)
    assert run_cli("run", TINY, "--only", "extract", *clean_args) == 0
    total, none_reused = _chunk_counts(caplog.text)[-1]
    assert none_reused == 0 and processed == total - reused  # the rerun did only the rest
    clean = export_rows(f"local:{tmp_path / 'clean-store'}", f"tester/{name}clean-extract", tmp_path / "b")

    assert finished_before >= 8 and len(clean) > 1000
    assert [r["content_hash"] for r in resumed] == [r["content_hash"] for r in clean]
    assert resumed == clean
    assert len({r["content_hash"] for r in resumed}) == len(resumed)
    assert not any(work.glob("*/*"))  # the checkpoint is removed once published


def _chunk_counts(log_text: str) -> list[tuple[int, int]]:
    return [tuple(map(int, m)) for m in re.findall(r"(\d+) chunks processed, (\d+) reused", log_text)]
