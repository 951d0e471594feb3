"""The `execute` stage: every response sample run in the sandbox, verdicts cached."""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from builder.stages.execute.stage import program_from_response
from builder.store import open_store
from tests.helpers import ROOT, TINY, export_rows, run_cli

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")


def response(code: str, tests: str) -> str:
    return (f"[Reasoning]\nThink.\n\n[Implementation]\n```python\n{code}\n```\n\n"
            f"[Explanation]\nIt works.\n\n[Tests]\n```python\n{tests}\n```\n")


def publish_responses(store_uri: str, repo: str, rows: list[dict], tmp_path) -> None:
    """Stand in for the `responses` stage: a dataset of response samples in the store."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "responses.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    store = open_store(store_uri)
    store.create_repo(repo, private=True)
    store.commit(repo, {"data/train-00000-of-00001.parquet": path}, "responses")


def settings(store_uri, tmp_path, name="ex"):
    return ["--set", f"name={name}", "--set", f"hub.store={store_uri}", "--set", "hub.namespace=tester",
            "--set", f"work_dir={tmp_path / 'work'}", "--set", "stages.execute.timeout_s=2"]


def test_program_is_the_python_blocks_in_order():
    text = response("def f(x):\n    return x", "assert f(1) == 1") + "\n```text\nnot code\n```\n"
    assert program_from_response(text) == "def f(x):\n    return x\n\n\nassert f(1) == 1\n"
    assert program_from_response("no code at all") is None
    assert program_from_response("```python\n\n```") is None


@needs_bwrap
def test_every_sample_gets_a_status_and_nothing_is_dropped(store_uri, tmp_path):
    rows = [
        {"instruction_id": "i1", "sample_index": 0, "response": response("def f(x):\n    return x + 1", "assert f(1) == 2")},
        {"instruction_id": "i1", "sample_index": 1, "response": response("def f(x):\n    return x", "assert f(1) == 2")},
        {"instruction_id": "i2", "sample_index": 0, "response": response("import sys", "sys.exit(0)\nassert False")},
        {"instruction_id": "i2", "sample_index": 1, "response": response("while True:\n    pass", "assert True")},
        {"instruction_id": "i3", "sample_index": 0, "response": "I cannot write code today."},
        {"instruction_id": "i3", "sample_index": 1, "response": response("def f(x):\n    return x + 1", "assert f(1) == 2")},
    ]
    publish_responses(store_uri, "tester/ex-responses", rows, tmp_path)
    assert run_cli("run", TINY, "--only", "execute", *settings(store_uri, tmp_path)) == 0
    out = export_rows(store_uri, "tester/ex-execute", tmp_path)
    assert [r["exec_status"] for r in out] == ["pass", "fail", "fail", "timeout", "no_code", "pass"]
    assert [(r["instruction_id"], r["sample_index"]) for r in out] == [
        (r["instruction_id"], r["sample_index"]) for r in rows]
    assert "SystemExit" in out[2]["exec_error"] and "AssertionError" in out[1]["exec_stderr"]
    manifest = json.loads(open_store(store_uri).read_text("tester/ex-execute", "main", "manifest.json"))
    assert manifest["drops"] == {}
    # the last sample is the first one's program again: it runs once
    assert manifest["stats"]["cache_misses"] == 4 and manifest["stats"]["cache_hits"] == 0
    assert manifest["stats"]["status:pass"] == 2 and manifest["stats"]["status:no_code"] == 1


def test_missing_code_column_is_named_before_any_work(tmp_path, caplog):
    store_uri = f"local:{tmp_path / 's'}"
    publish_responses(store_uri, "tester/ex-responses", [{"text": "x"}], tmp_path)
    assert run_cli("run", TINY, "--only", "execute", *settings(store_uri, tmp_path)) == 2
    assert "reads column 'response'" in caplog.text


@needs_bwrap
def test_kill_9_mid_execute_then_rerun_executes_nothing_twice(tmp_path):
    store_uri = f"local:{tmp_path / 's'}"
    count = 160
    rows = [{"instruction_id": f"i{i}", "sample_index": 0,
             "response": response(f"import time\ntime.sleep(0.05)\nX = {i}", f"assert X == {i}")}
            for i in range(count)]
    publish_responses(store_uri, "tester/ex-responses", rows, tmp_path)
    args = [*settings(store_uri, tmp_path), "--set", "stages.execute.batch_size=4"]
    process = subprocess.Popen([sys.executable, "-m", "builder", "run", str(TINY), "--only", "execute", *args],
                               cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cache = tmp_path / "work" / "cache" / "execute.sqlite"
    deadline = time.monotonic() + 120
    while _cached(cache) < 40:
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    before = _cached(cache)
    assert before < count

    assert run_cli("run", TINY, "--only", "execute", *args) == 0
    manifest = json.loads(open_store(store_uri).read_text("tester/ex-execute", "main", "manifest.json"))
    assert manifest["stats"]["cache_hits"] == before  # every verdict already cached is reused
    assert manifest["stats"]["cache_misses"] == count - before  # only the rest ran
    assert _cached(cache) == count
    out = export_rows(store_uri, "tester/ex-execute", tmp_path)
    assert [r["instruction_id"] for r in out] == [r["instruction_id"] for r in rows]
    assert {r["exec_status"] for r in out} == {"pass"}


def _cached(path) -> int:
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(path) as db:
            return db.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
