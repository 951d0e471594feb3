"""`builder sandbox exec`: one JSON result per program, as the pipeline would run it."""

import json
import shutil

import pytest

from tests.helpers import run_cli

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")


def test_exec_jsonl_prints_one_result_per_program(tmp_path, capsys):
    programs = tmp_path / "p.jsonl"
    programs.write_text("\n".join(json.dumps(p) for p in [
        {"id": "good", "code": "def f(x):\n    return x + 1\n\nassert f(1) == 2\nprint('ok')\n"},
        {"id": "wrong", "code": "assert 1 == 2"},
        {"id": "early-exit", "code": "import sys\nsys.exit(0)\nassert False"},
        {"id": "loop", "code": "while True:\n    pass"},
        {"id": "syntax", "code": "def f(:"},
    ]) + "\n")
    assert run_cli("sandbox", "exec", "--jsonl", programs, "--timeout", "2") == 0
    results = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["id"], r["status"]) for r in results] == [
        ("good", "pass"), ("wrong", "fail"), ("early-exit", "fail"), ("loop", "timeout"),
        ("syntax", "error"),
    ]
    assert results[0]["stdout"] == "ok\n" and "AssertionError" in results[1]["stderr"]
    assert all(set(r) >= {"id", "status", "duration_s", "stdout", "stderr"} for r in results)


def test_exec_single_file_and_bad_input(tmp_path, capsys, caplog):
    program = tmp_path / "one.py"
    program.write_text("assert sum([1, 2]) == 3\n")
    assert run_cli("sandbox", "exec", program) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "pass"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"code": "x = 1"}\n')
    assert run_cli("sandbox", "exec", "--jsonl", bad) == 2
    assert "bad.jsonl:1: expected" in caplog.text
    assert run_cli("sandbox", "exec", program, "--backend", "nope") == 2
    assert "unknown sandbox backend 'nope'" in caplog.text


@pytest.mark.parametrize("timeout", ["nan", "inf", "-inf", "0", "-1"])
def test_exec_bad_timeout_is_one_line(tmp_path, caplog, timeout):
    program = tmp_path / "one.py"
    program.write_text("assert True\n")
    assert run_cli("sandbox", "exec", program, f"--timeout={timeout}") == 2
    [record] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert "timeout must be a positive number of seconds" in record.getMessage()
    assert "\n" not in record.getMessage()
