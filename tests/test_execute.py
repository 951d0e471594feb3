"""The `execute` stage: every response sample run in the sandbox, verdicts cached."""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from builder.sandbox.response_code import program_from_response
from builder.store import open_store
from tests import witness
from tests.helpers import ROOT, TINY, export_rows, recipe_settings, run_cli

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


def settings(store_uri, tmp_path, name="ex", timeout_s=2):
    return recipe_settings(tmp_path, name, store_uri, stages__execute__timeout_s=timeout_s)


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
    (rates,) = manifest["figures"]  # i1 and i3 passed 1 of 2, i2 none
    assert rates["title"] == "Task pass rates" and [r[1] for r in rates["rows"]] == [1, 0, 0, 2, 0, 0]


def test_missing_code_column_is_named_before_any_work(tmp_path, caplog):
    store_uri = f"local:{tmp_path / 's'}"
    publish_responses(store_uri, "tester/ex-responses", [{"text": "x"}], tmp_path)
    assert run_cli("run", TINY, "--only", "execute", *settings(store_uri, tmp_path)) == 2
    assert "reads column 'response'" in caplog.text


def witnessed(store_uri, tmp_path, **kw):
    """Settings with the `witness` sandbox: the local sandbox, every program it runs written
    down (tests/witness.py)."""
    return [*settings(store_uri, tmp_path, **kw), "--set", "sandbox.backend=witness"]


@needs_bwrap
def test_a_rerun_on_more_rows_runs_only_the_new_programs(tmp_path):
    """Verdicts come from the cache, not from running the program again: counted by the
    sandbox's witness, not by the stage's own cache counts."""
    store_uri = f"local:{tmp_path / 's'}"
    rows = [{"instruction_id": f"i{i}", "sample_index": 0,
             "response": response(f"X = {i}", f"assert X == {i}")} for i in range(6)]
    rows.append({**rows[0], "instruction_id": "same-program"})  # a program seen before: run once
    publish_responses(store_uri, "tester/ex-responses", rows, tmp_path)
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    with witness.installed(first):
        assert run_cli("run", TINY, "--only", "execute", *witnessed(store_uri, tmp_path)) == 0
    programs = [witness.digest(program_from_response(r["response"])) for r in rows[:6]]
    assert sorted(witness.keys(first, "program")) == sorted(programs)  # the 7th: not run
    assert witness.counted(first, "program", "done") == witness.counted(first, "program")

    new = [{"instruction_id": f"n{i}", "sample_index": 0,
            "response": response(f"Y = {i}", f"assert Y == {i}")} for i in range(3)]
    publish_responses(store_uri, "tester/ex-responses", rows + new, tmp_path)
    with witness.installed(second):
        assert run_cli("run", TINY, "--only", "execute", *witnessed(store_uri, tmp_path)) == 0
    assert sorted(witness.keys(second, "program")) == sorted(
        witness.digest(program_from_response(r["response"])) for r in new)  # fmt: skip
    out = export_rows(store_uri, "tester/ex-execute", tmp_path)
    assert [r["instruction_id"] for r in out] == [r["instruction_id"] for r in rows + new]
    assert {r["exec_status"] for r in out} == {"pass"}


@needs_bwrap
def test_kill_9_mid_execute_then_rerun_executes_nothing_twice(tmp_path):
    """The sandbox stops before its third batch of 4 (8 verdicts cached); `kill -9`; the rerun
    runs exactly the 32 programs without a verdict, each once."""
    store_uri = f"local:{tmp_path / 's'}"
    count = 40
    rows = [{"instruction_id": f"i{i}", "sample_index": 0,
             "response": response(f"X = {i}", f"assert X == {i}")} for i in range(count)]
    publish_responses(store_uri, "tester/ex-responses", rows, tmp_path)
    args = [*witnessed(store_uri, tmp_path), "--set", "stages.execute.batch_size=4",
            "--set", "stages.execute.workers=2"]  # fmt: skip
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    witness.kill_9_when_paused(first, ["run", TINY, "--only", "execute", *args], "program:8",
                               "the sandbox to pause")  # fmt: skip
    ran = witness.counted(first, "program", "done")
    assert len(ran) == 8 and witness.counted(first, "program") == ran  # none in flight

    with witness.installed(second):
        assert run_cli("run", TINY, "--only", "execute", *args) == 0
    again = witness.counted(second, "program")
    assert set(again.values()) == {1} and not set(again) & set(ran)  # nothing ran twice
    assert len(again) == count - len(ran)  # and nothing was left out
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


def with_record(bwrap_command, record):
    """The local sandbox's bwrap command with the host folder `record` writable at /record: the
    programs of a test say there that they started (nothing else of the host is in reach)."""

    def command(*args, **kwargs):
        cmd = bwrap_command(*args, **kwargs)
        at = cmd.index("--remount-ro")  # mount points are made before the root turns read-only
        return [*cmd[:at], "--bind", str(record), "/record", *cmd[at:]]

    return command


# `builder run ...` with the recording sandbox: python -c DRIVER RECORD_DIR ARGS...
DRIVER = """
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, even if started
# from a shell's background job, which ignores SIGINT (and so would this run)
from builder.sandbox import local
from tests.test_execute import with_record
local.bwrap_command = with_record(local.bwrap_command, sys.argv[1])
from builder.cli.main import main
sys.exit(main(sys.argv[2:]))
"""
RECORD_START = "open('/record/started', 'a').write('{i}\\n')\n"
WAIT_FOR_GO = (  # a slow program: it ends when the test says so (or fails after 25 s)
    "import os, time\ndeadline = time.monotonic() + 25\n"
    "while not os.path.exists('/record/go'):\n"
    "    assert time.monotonic() < deadline, 'no go'\n    time.sleep(0.05)\n"
)


def _started(record) -> list[int]:
    path = record / "started"
    return sorted(int(line) for line in path.read_text().split()) if path.exists() else []


def _processes_naming(text: str) -> list[int]:
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            if text.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                found.append(int(entry))
        except OSError:
            continue
    return found


@needs_bwrap
def test_ctrl_c_mid_execute_stops_at_once_keeps_verdicts_and_rerun_resumes(tmp_path, monkeypatch):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) while two slow programs
    run and others wait: nothing starts after it, nothing is re-run, what finished is cached,
    and the rerun executes exactly what had not finished."""
    store_uri = f"local:{tmp_path / 's'}"
    record = tmp_path / "record"
    record.mkdir()
    count, first_slow = 24, 12  # batches of 8: [0-7 fast] [8-11 fast, 12-15 slow] [16-23 slow]
    codes = [RECORD_START.format(i=i) + WAIT_FOR_GO * (i >= first_slow) for i in range(count)]
    rows = [{"instruction_id": f"i{i}", "sample_index": 0, "response": response(c, "assert True")}
            for i, c in enumerate(codes)]
    publish_responses(store_uri, "tester/ex-responses", rows, tmp_path)
    args = [*settings(store_uri, tmp_path, timeout_s=30), "--set", "stages.execute.batch_size=8",
            "--set", "stages.execute.workers=2"]
    command = [sys.executable, "-c", DRIVER, record, "run", TINY, "--only", "execute", *args]
    process = subprocess.Popen(command, cwd=ROOT, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120  # a guard against a hang, not a measurement
        # The event: both workers hold a slow program, so every program before them has finished.
        while _started(record) != list(range(first_slow + 2)):
            assert process.poll() is None and time.monotonic() < deadline, _started(record)
            time.sleep(0.02)
        at_interrupt = _started(record)
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 130, stderr.decode()[-2000:]
    assert _started(record) == at_interrupt  # nothing queued started, nothing was re-run
    assert _cached(tmp_path / "work" / "cache" / "execute.sqlite") == first_slow  # all finished
    assert _processes_naming(str(record)) == []  # no sandbox left running

    (record / "go").write_text("")
    (record / "started").unlink()
    from builder.sandbox import local

    monkeypatch.setattr(local, "bwrap_command", with_record(local.bwrap_command, record))
    assert run_cli("run", TINY, "--only", "execute", *args) == 0
    assert _started(record) == list(range(first_slow, count))  # only what had not finished, once
    store = open_store(store_uri)
    manifest = json.loads(store.read_text("tester/ex-execute", "main", "manifest.json"))
    assert manifest["stats"]["cache_hits"] == first_slow
    assert manifest["stats"]["cache_misses"] == count - first_slow
    out = export_rows(store_uri, "tester/ex-execute", tmp_path)
    assert {r["exec_status"] for r in out} == {"pass"}


@pytest.mark.parametrize("status, error, kind", [
    ("pass", "", ""),
    ("fail", "AssertionError", "assertion"),
    ("fail", "AssertionError: expected 2", "assertion"),
    ("fail", "NameError: name 'x' is not defined", "NameError"),
    ("fail", "MyErr: 1", "MyErr"),
    ("fail", "SystemExit(3): the program exited before it finished", "SystemExit"),
    ("fail", "memory limit exceeded (more than 268435456 bytes in all its processes)",
     "memory_limit"),
    ("fail", "killed by signal 9", "fail"),
    ("error", "SyntaxError: invalid syntax", "SyntaxError"),
    ("timeout", "exceeded the wall-clock limit of 2s", "timeout"),
    ("no_code", "the response has no Python code block", "no_code"),
])
def test_failure_kind_names_why_a_sample_failed(status, error, kind):
    from builder.stages.execute.task_figures import failure_kind

    assert failure_kind(status, error) == kind


def test_asserts_are_counted_in_the_program():
    from builder.stages.execute.task_figures import count_asserts

    assert count_asserts("def f(x):\n    return x\n\nassert f(1) == 1\nassert f(2) == 2\n") == 2
    assert count_asserts("def f(x):\n    return x\n\nprint(f(1))\n") == 0
    assert count_asserts("def f(:\n") == 0 and count_asserts(None) == 0


@needs_bwrap
def test_task_figures_count_every_sample_of_a_task_across_chunks(store_uri, tmp_path):
    """Samples of one task in different chunks, and out of order: one tally per task."""
    good = response("def f(x):\n    return x + 1", "assert f(1) == 2\nassert f(2) == 3")
    wrong = response("def f(x):\n    return x", "assert f(1) == 2")
    rows = [
        {"instruction_id": "a", "sample_index": 0, "response": good},
        {"instruction_id": "a", "sample_index": 1, "response": wrong},
        {"instruction_id": "b", "sample_index": 0, "response": response("x = y", "assert x")},
        {"instruction_id": "b", "sample_index": 1, "response": "no code"},
        {"instruction_id": "a", "sample_index": 2, "response": good.replace("x + 1", "x+1")},
        {"instruction_id": None, "sample_index": 0, "response": good.replace("x + 1", "1 + x")},
    ]
    publish_responses(store_uri, "tester/tf-responses", rows, tmp_path)
    args = settings(store_uri, tmp_path, name="tf") + ["--set", "stages.execute.chunk_size=2"]
    assert run_cli("run", TINY, "--only", "execute", *args) == 0
    out = export_rows(store_uri, "tester/tf-execute", tmp_path)
    assert [r["exec_failure"] for r in out] == ["", "assertion", "NameError", "no_code", "", ""]
    assert [r["exec_asserts"] for r in out] == [2, 1, 1, 0, 2, 2]
    figures = [(r["task_samples"], r["task_passed"], r["task_pass_rate"]) for r in out]
    assert figures == [(3, 2, 0.6667), (3, 2, 0.6667), (2, 0, 0.0), (2, 0, 0.0), (3, 2, 0.6667),
                       (1, 1, 1.0)]  # fmt: skip
    manifest = json.loads(open_store(store_uri).read_text("tester/tf-execute", "main", "manifest.json"))
    assert manifest["stats"]["failure:assertion"] == 1 and manifest["stats"]["failure:NameError"] == 1


@needs_bwrap
def test_a_recipes_sandbox_options_reach_the_backend_which_checks_them(store_uri, tmp_path, caplog):
    """`sandbox.options` are the backend's own settings: a folder bound read-only for imports
    here (a program that needs it passes only with it), and a name the backend does not take is
    a one-line error before any work."""
    library = tmp_path / "library"
    library.mkdir()
    (library / "house_rules.py").write_text("LIMIT = 7\n")
    code = "from house_rules import LIMIT\n\ndef cap(x):\n    return min(x, LIMIT)"
    sample = response(code, "assert cap(9) == 7")
    rows = [{"instruction_id": "i1", "sample_index": 0, "response": sample}]
    publish_responses(store_uri, "tester/ex-responses", rows, tmp_path)
    assert run_cli("run", TINY, "--only", "execute", *settings(store_uri, tmp_path)) == 0
    (plain,) = export_rows(store_uri, "tester/ex-execute", tmp_path)
    assert plain["exec_status"] == "fail" and "ModuleNotFoundError" in plain["exec_error"]

    bound = ["--set", f"sandbox.options.python_paths=[{library}]"]
    assert run_cli("run", TINY, "--only", "execute", *settings(store_uri, tmp_path), *bound) == 0
    (with_library,) = export_rows(store_uri, "tester/ex-execute", tmp_path)
    assert with_library["exec_status"] == "pass"  # a new fingerprint: the option is a setting

    caplog.clear()
    wrong = ["--set", "sandbox.options.imagee=python:3.11"]
    assert run_cli("run", TINY, "--only", "execute", *settings(store_uri, tmp_path), *wrong) != 0
    err = caplog.text
    assert "sandbox.options.imagee: not an option of the local sandbox" in err
    assert "python_paths" in err and "infra_retries" in err


def test_sandboxes_say_what_they_can_do_and_the_harness_version_keys_their_verdicts():
    from builder.registry import SANDBOXES
    from builder.sandbox.base import HARNESS_VERSION

    binds = {name: SANDBOXES.load(name).binds_host_python for name in ("local", "docker", "e2b")}
    assert binds == {"local": True, "docker": True, "e2b": False}
    assert {SANDBOXES.load(n).harness_version for n in binds} == {HARNESS_VERSION}
