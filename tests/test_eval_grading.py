"""Grading in the local sandbox: canonical solutions pass, each kind of wrong sample gets the
verdict EvalPlus gives it, untrusted output cannot reach the report, a sample that kills its
grading program fails alone. (Agreement with `evalplus.evaluate` itself: test_eval_exactness.)"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from builder.evaluation.evalplus_data import load_evalplus
from builder.evaluation.evalplus_grader import GradeOptions, Sample, grade
from evaluation.mixed_samples import make_solution

ROOT = Path(__file__).resolve().parents[1]
CHEAP_HUMANEVAL = ["HumanEval/2", "HumanEval/7", "HumanEval/23", "HumanEval/41", "HumanEval/53",
                   "HumanEval/55", "HumanEval/60", "HumanEval/138"]  # fmt: skip
CHEAP_MBPP = ["Mbpp/17", "Mbpp/72", "Mbpp/139", "Mbpp/171", "Mbpp/242", "Mbpp/455", "Mbpp/793"]


def need_bwrap() -> None:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")


@pytest.fixture(scope="module")
def cache_dir():
    """Outside /tmp, so the ground truth reaches the sandbox as a bound directory (under /tmp
    the sandboxes mount their own tmpfs and programs carry their task files instead)."""
    root = ROOT / ".builder"
    root.mkdir(exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="test-eval-", dir=root))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def canonical(data, task_ids):
    return [Sample(t, 0, data.problems[t]["prompt"] + data.problems[t]["canonical_solution"])
            for t in task_ids]  # fmt: skip


def test_canonical_solutions_pass_and_find_zero_follows_the_option(cache_dir):
    need_bwrap()
    humaneval, mbpp = load_evalplus("humaneval+"), load_evalplus("mbpp+")
    tasks = CHEAP_HUMANEVAL + ["HumanEval/32"]
    exact = grade(humaneval, canonical(humaneval, tasks), cache_dir=cache_dir)
    fixed = grade(humaneval, canonical(humaneval, tasks), cache_dir=cache_dir,
                  options=GradeOptions(fix_find_zero=True))  # fmt: skip
    assert [v.plus_pass for v in fixed] == [True] * len(tasks)
    # EvalPlus 0.3.1 never records a find_zero input as passed: HumanEval/32 always fails.
    assert [v.plus_pass for v in exact] == [True] * len(CHEAP_HUMANEVAL) + [False]
    assert exact[-1].base.status == "fail" and exact[-1].base.details == ""
    assert [v.plus_pass for v in grade(mbpp, canonical(mbpp, CHEAP_MBPP), cache_dir=cache_dir)] == [
        True
    ] * 7
    assert all(len(v.plus.details) == len(mbpp.problems[v.sample.task_id]["plus_input"])
               for v in grade(mbpp, canonical(mbpp, CHEAP_MBPP[:2]), cache_dir=cache_dir))  # fmt: skip


EXPECTED = {  # kind -> (base status, plus status or None when skipped after a base failure)
    "correct": ("pass", "pass"),
    "completion": ("pass", "pass"),
    "wrong_all": ("fail", None),
    "wrong_plus": ("pass", "fail"),
    "float_noise": ("pass", "pass"),  # within HumanEval/2's atol
    "float_off": ("fail", None),
    "crash_call": ("fail", None),
    "sleep_first": ("fail", None),  # a per-input time limit raises inside the call: fail
    "mutate_input": ("pass", "pass"),
    "noisy": ("pass", "pass"),
    "crash_module": ("fail", None),
    "exit_early": ("timeout", None),  # EvalPlus: a process that ends without a status
    "syntax_error": ("fail", None),
    "hang": ("timeout", None),  # swallows the time limit, killed at the check's timeout
}


@pytest.mark.slow
def test_each_kind_of_sample_gets_evalplus_verdict(cache_dir):
    need_bwrap()
    humaneval = load_evalplus("humaneval+")
    problem = humaneval.problems["HumanEval/2"]  # float output, 3 base inputs: a cheap hang
    rows = [make_solution(problem, kind) for kind in EXPECTED]
    samples = [Sample(r["task_id"], i, r.get("solution") or problem["prompt"] + r["completion"])
               for i, r in enumerate(rows)]  # fmt: skip
    verdicts = grade(humaneval, samples, cache_dir=cache_dir)
    got = {kind: (v.base.status, v.plus and v.plus.status) for kind, v in zip(EXPECTED, verdicts)}
    assert got == EXPECTED
    by_kind = dict(zip(EXPECTED, verdicts))
    assert by_kind["wrong_plus"].plus.failed_index() is not None
    assert by_kind["crash_call"].base.details == "10"  # second input raised; fast check stopped
    # with every plus test run, the same scores: only statuses after a base failure appear
    full = grade(humaneval, samples[:3], cache_dir=cache_dir,
                 options=GradeOptions(skip_plus_on_base_fail=False, fast_check=False))  # fmt: skip
    assert full[2].plus is not None and full[2].plus.status == "fail" and not full[2].plus_pass
    assert set(full[2].base.details) == {"0"} and len(full[2].base.details) == 3  # test details


def test_a_sample_that_kills_its_grading_program_fails_alone(cache_dir):
    need_bwrap()
    humaneval = load_evalplus("humaneval+")
    killer = "import ctypes, os\nctypes.CDLL(None).kill(os.getppid(), 9)\n"
    samples = canonical(humaneval, CHEAP_HUMANEVAL[:3])
    samples.insert(1, Sample("HumanEval/7", 1, samples[1].solution + killer))
    verdicts = grade(humaneval, samples, cache_dir=cache_dir, workers=1)
    assert [v.plus_pass for v in verdicts] == [True, False, True, True]
    assert verdicts[1].base.status == "fail" and "fail" in verdicts[1].base.error


def test_task_files_travel_inside_programs_when_the_cache_is_under_tmp(tmp_path):
    need_bwrap()
    mbpp = load_evalplus("mbpp+")
    verdicts = grade(mbpp, canonical(mbpp, CHEAP_MBPP[:3]), cache_dir=tmp_path)
    assert [v.plus_pass for v in verdicts] == [True] * 3


def test_a_sandbox_without_evalplus_is_an_error_not_failing_samples(cache_dir, monkeypatch):
    need_bwrap()
    from builder.errors import BuilderError
    from builder.evaluation import evalplus_grader

    monkeypatch.setattr(evalplus_grader, "_evalplus_paths", list)  # nothing bound
    mbpp = load_evalplus("mbpp+")
    with pytest.raises(BuilderError, match="EvalPlus cannot run in the local sandbox: .*Error"):
        grade(mbpp, canonical(mbpp, CHEAP_MBPP[:2]), cache_dir=cache_dir)
