"""Mutation testing: the operators (`mutants.py`) and the `mutate` step through the real sandbox."""

import ast
import json

from builder.stages.execute.mutants import OPERATORS, mutants
from builder.store import open_store
from tests import witness
from tests.helpers import TINY, export_rows, run_cli
from tests.test_execute import needs_bwrap, publish_responses, response, settings

EVERY_OPERATOR = '''\
"""A module docstring: never mutated."""
import math

LIMIT: int = 10


def scale(values: list[int], factor: float = 2.0) -> list[float]:
    """A docstring: never mutated."""
    out = []
    for v in values:
        if v > LIMIT and not math.isnan(v):
            out.append(v * factor)
        total = len(out) + 1
    return out
'''


def one_change(before: str, after: str) -> str:
    """The single line that differs between two unparsed sources."""
    a, b = ast.unparse(ast.parse(before)).splitlines(), after.splitlines()
    if len(a) != len(b):
        return "lines removed or added"
    (changed,) = [(x.strip(), y.strip()) for x, y in zip(a, b) if x != y]
    return f"{changed[0]} -> {changed[1]}"


def test_each_operator_makes_the_break_it_names():
    found = mutants(EVERY_OPERATOR, limit=100)
    assert {m.operator for m in found} == set(OPERATORS)
    changes = {(m.operator, one_change(EVERY_OPERATOR, m.code)) for m in found}
    assert ("compare", "if v > LIMIT and (not math.isnan(v)): -> if v >= LIMIT and (not math.isnan(v)):") in changes
    assert ("arithmetic", "out.append(v * factor) -> out.append(v // factor)") in changes
    assert ("arithmetic", "total = len(out) + 1 -> total = len(out) - 1") in changes
    assert ("boolean", "if v > LIMIT and (not math.isnan(v)): -> if v > LIMIT or not math.isnan(v):") in changes
    assert ("boolean", "if v > LIMIT and (not math.isnan(v)): -> if v > LIMIT and (not not math.isnan(v)):") in changes
    assert ("constant", "LIMIT: int = 10 -> LIMIT: int = 11") in changes
    assert ("constant", "def scale(values: list[int], factor: float=2.0) -> list[float]: -> "
            "def scale(values: list[int], factor: float=3.0) -> list[float]:") in changes
    assert ("return", "return out -> return None") in changes
    assert ("statement", "out = [] -> pass") in changes
    branch = [m for m in found if m.operator == "branch"]
    assert len(branch) == 1 and "out.append" not in branch[0].code and "if v" not in branch[0].code


def test_docstrings_annotations_imports_and_prints_are_left_alone():
    for m in mutants(EVERY_OPERATOR + "print('done')\n", limit=100):
        tree = ast.parse(m.code)
        assert ast.get_docstring(tree) == "A module docstring: never mutated."
        assert "import math" in m.code and "values: list[int]" in m.code and "-> list[float]" in m.code
        assert "A docstring: never mutated." in m.code and "print('done')" in m.code


def test_mutants_are_deterministic_distinct_and_bounded():
    first = mutants(EVERY_OPERATOR, limit=5, seed=0)
    assert first == mutants(EVERY_OPERATOR, limit=5, seed=0)
    assert len(first) == 5 and len({m.code for m in first}) == 5
    assert len({m.operator for m in first}) == 5  # round-robin: five kinds of break in five
    assert any(mutants(EVERY_OPERATOR, limit=5, seed=s) != first for s in range(1, 6))
    assert mutants("def f(:", limit=5) == [] and mutants("import os\ndef f():\n    return None", limit=5) == []


def publish_executed(store_uri, tmp_path, rows):
    """Stand in for `execute`: response samples with their verdicts."""
    full = [{"instruction_id": f"i{i}", "sample_index": 0, "exec_status": "pass",
             "exec_duration_s": 0.05, **row} for i, row in enumerate(rows)]  # fmt: skip
    publish_responses(store_uri, "tester/ex-execute", full, tmp_path)


CLAMP = "def clamp(x, lo, hi):\n    if x < lo:\n        return lo\n    if x > hi:\n        return hi\n    return x"
PINNING = ("assert clamp(5, 0, 10) == 5\nassert clamp(-1, 0, 10) == 0\nassert clamp(0, 0, 10) == 0\n"
           "assert clamp(11, 0, 10) == 10\nassert clamp(10, 0, 10) == 10")


@needs_bwrap
def test_strength_is_zero_for_tests_that_assert_nothing_and_high_for_pinning_tests(tmp_path):
    store_uri = f"local:{tmp_path / 's'}"
    rows = [
        {"response": response(CLAMP, "assert clamp(5, 0, 10) is not None or True")},
        {"response": response(CLAMP, PINNING)},
        {"response": response(CLAMP, "assert clamp(5, 0, 10) == 5")},
        {"response": response(CLAMP, PINNING), "exec_status": "fail"},
        {"response": "no parts at all"},
        {"response": response("def f():\n    return None", "assert f() is None")},
        {"response": response(CLAMP, PINNING), "exec_duration_s": 9.0},
        {"response": response("def add(a, b):\n    return a + b", "assert add(2, 3) == 5")},
    ]
    publish_executed(store_uri, tmp_path, rows)
    assert run_cli("run", TINY, "--only", "mutate", *settings(store_uri, tmp_path)) == 0
    out = export_rows(store_uri, "tester/ex-mutate", tmp_path)
    weak, strong, partial = out[0], out[1], out[2]
    assert weak["test_strength"] == 0 and weak["test_mutants"] == 7 and len(weak["test_survivors"]) == 7
    # every break is caught but the two that change nothing (x <= lo returns lo == x anyway)
    assert strong["test_strength"] == round(5 / 7, 4) and strong["test_mutants"] == 7
    assert sorted(strong["test_survivors"]) == ["compare@2", "compare@4"]
    assert 0 < partial["test_strength"] < strong["test_strength"]
    assert [r["mutation_skipped"] for r in out] == [
        "", "", "", "not_passed", "malformed_missing_reasoning", "no_mutable_code", "slow_sample", ""]
    assert all(r["test_strength"] is None for r in out[3:7])
    # tests that pin a function with no break that changes nothing: every break caught
    assert (out[7]["test_strength"], out[7]["test_mutants"], out[7]["test_survivors"]) == (1.0, 2, [])
    manifest = json.loads(open_store(store_uri).read_text("tester/ex-mutate", "main", "manifest.json"))
    assert manifest["drops"] == {} and manifest["stats"]["measured"] == 4
    strengths, weak, strong = manifest["figures"][0], manifest["figures"][1], manifest["figures"][2]
    assert [r[1] for r in strengths["rows"]] == [1, 1, 0, 1, 0, 1]  # 0, the partial one, 5/7, 1
    assert weak["title"] == "A weak test block" and "caught 0 of 7" in weak["caption"]
    assert strong["title"] == "A strong test block" and "caught 2 of 2 mutants (missed: none)" in strong["caption"]
    assert [b["label"] for b in strong["blocks"]] == ["instruction", "implementation", "tests"]
    assert strong["blocks"][2]["text"] == "assert add(2, 3) == 5"
    assert manifest["stats"]["mutants"] == 23 and manifest["stats"]["killed"] == sum(
        r["test_mutants_killed"] for r in out)


@needs_bwrap
def test_kill_9_during_mutation_runs_resumes_with_nothing_run_twice(tmp_path):
    """The sandbox pauses after 8 mutant verdicts (batches of 4); `kill -9`; the rerun runs
    exactly the other mutants, each once, and publishes the same strengths as a clean run."""
    store_uri = f"local:{tmp_path / 's'}"
    rows = [{"response": response(CLAMP.replace("x < lo", f"x < lo - {i}"), PINNING)} for i in range(4)]
    publish_executed(store_uri, tmp_path, rows)
    args = [*settings(store_uri, tmp_path), "--set", "sandbox.backend=witness",
            "--set", "stages.mutate.batch_size=4", "--set", "stages.mutate.workers=2",
            "--set", "stages.mutate.mutants=5"]  # fmt: skip
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    witness.kill_9_when_paused(first, ["run", TINY, "--only", "mutate", *args], "program:8",
                               "the sandbox to pause")  # fmt: skip
    ran = witness.counted(first, "program", "done")
    assert len(ran) == 8 and witness.counted(first, "program") == ran
    with witness.installed(second):
        assert run_cli("run", TINY, "--only", "mutate", *args) == 0
    again = witness.counted(second, "program")
    assert set(again.values()) == {1} and not set(again) & set(ran)
    assert len(again) == 4 * 5 - len(ran)
    out = export_rows(store_uri, "tester/ex-mutate", tmp_path)
    assert [r["test_mutants"] for r in out] == [5] * 4


def test_untagged_responses_are_measured_on_their_implementation_block():
    from builder.stages.execute.mutate import MutateParams, MutateStage

    text = f"Here it is.\n\n```python\n{CLAMP}\n```\n\nAnd tests:\n\n```python\n{PINNING}\n```\n"
    stage = MutateStage(MutateParams(mutants=3))
    plan = stage._plan({"response": text, "exec_status": "pass", "exec_duration_s": 0.1,
                        "response_format": "untagged"})  # fmt: skip
    assert not plan.skipped and len(plan.programs) == 3
    for program, mutant in zip(plan.programs, plan.mutants):
        assert program.startswith(mutant.code) and program.rstrip().endswith(PINNING.splitlines()[-1])


@needs_bwrap
def test_the_benchmark_runs_at_its_smallest_setting_and_ranks_the_test_blocks():
    import sys

    from tests.helpers import ROOT

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_mutate

    figures = bench_mutate.main(bench_mutate.SMALLEST)  # bench_mutate.py at its smallest
    assert [figures[side]["samples"] for side in bench_mutate.SIDES] == [4, 4, 4]
    means = [figures[side]["mean_strength"] for side in bench_mutate.SIDES]
    assert means[0] > means[1] > means[2]  # people's tests > one assert > nothing checked
