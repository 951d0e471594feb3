"""The `select` stage and the SFT text transforms."""

import json

from builder.pipeline.recipe import load_recipe
from builder.stages.select.sft_format import (
    remove_tests_section,
    strip_comments,
    strip_comments_in_blocks,
)
from builder.stages.select.stage import SelectParams, SelectStage
from builder.store import open_store
from tests.helpers import TINY, export_rows, run_cli


def response(code="def add(a, b):\n    return a + b", tests="assert add(1, 2) == 3", extra=""):
    return (f"[Reasoning]\nAdd two numbers.{extra}\n\n[Implementation]\n```python\n{code}\n```\n\n"
            f"[Explanation]\nIt returns the sum.\n\n[Tests]\n```python\n{tests}\n```\n")


def sample(instruction="Write add.", status="pass", **kwargs):
    return {"instruction": instruction, "response": response(**kwargs), "exec_status": status,
            "exec_error": "", "seed_id": "s1"}


def run_select(rows, **params):
    stage = SelectStage(SelectParams(**params))
    chunk = stage.process(rows)
    out = list(stage.finalize(iter(chunk.kept)))
    kept = [r for r in out if isinstance(r, dict)]
    drops = [(d.reason, d.row) for d in chunk.dropped] + [(d.reason, d.row) for d in out if not isinstance(d, dict)]
    return kept, drops


def test_keeps_only_passing_well_formed_complete_responses():
    rows = [
        sample(),
        sample("Task two.", status="fail"),
        sample("Task three.", tests="print(add(1, 2))"),  # no assert
        sample("Task four.", extra=" TODO: handle floats"),
        {**sample("Task five."), "response": "[Reasoning]\nx\n\n[Implementation]\n```python\nx = 1\n```\n"},
        sample("Task six.", tests="assert add(1, 2) == 3\n```\n\n```python\nassert add(2, 2) == 4"),
    ]
    kept, drops = run_select(rows)
    assert [r["instruction"] for r in kept] == ["Write add."]
    assert sorted(reason for reason, _ in drops) == [
        "incomplete", "malformed_missing_explanation", "malformed_no_asserts",
        "malformed_tests_blocks", "not_passed",
    ]


def test_one_response_per_instruction_chosen_by_seed_and_duplicates_removed():
    variants = [f"def add(a, b):\n    return a + b  # v{i}" for i in range(6)]
    rows = [sample("Write  add.\n", code=c) for c in variants]  # same task after normalising
    rows.append(sample("Write add.", code=variants[0]))  # the exact same response again
    kept, drops = run_select(rows, seed=1)
    assert len(kept) == 1
    assert sorted(r for r, _ in drops) == ["duplicate_response"] + ["not_chosen"] * 5
    picks = {run_select(rows, seed=s)[0][0]["response"] for s in range(12)}
    assert len(picks) > 1  # the seed decides
    assert run_select(rows, seed=3)[0] == run_select(rows, seed=3)[0]  # and decides the same way
    # chunking does not change the choice: one chunk per row
    stage = SelectStage(SelectParams(seed=3))
    one_by_one = [r for row in rows for r in stage.process([row]).kept]
    assert [r for r in stage.finalize(iter(one_by_one)) if isinstance(r, dict)] == run_select(rows, seed=3)[0]


def test_messages_and_flags():
    code = "def add(a, b):\n    # the sum\n    return a + b  # done\n"
    (row,), _ = run_select([sample(code=code)], strip_comments=True, remove_tests=True)
    assert row["messages"] == [{"role": "user", "content": "Write add."},
                               {"role": "assistant", "content": row["response"]}]
    assert "# the sum" not in row["response"] and "[Tests]" not in row["response"]
    assert "return a + b\n" in row["response"] and row["seed_id"] == "s1"


def test_text_transforms():
    assert strip_comments('x = "# not a comment"  # a comment\n# alone\ny = 2\n') == 'x = "# not a comment"\ny = 2\n'
    assert strip_comments("def broken(:\n  # kept\n") == "def broken(:\n  # kept\n"
    assert "# c" not in strip_comments_in_blocks("text # c stays\n```python\nx = 1  # c\n```\n").split("```")[1]
    assert remove_tests_section(response()).rstrip().endswith("It returns the sum.")


def test_select_publishes_sft_pairs(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    store_uri = f"local:{tmp_path / 's'}"
    rows = [sample(), sample(status="timeout"), sample("Another task entirely.", code="def add(a, b):\n    return b + a")]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "x.parquet")
    store = open_store(store_uri)
    store.create_repo("tester/sel-mutate", private=True)
    store.commit("tester/sel-mutate", {"data/train-00000-of-00001.parquet": tmp_path / "x.parquet"}, "x")
    args = ["--set", "name=sel", "--set", f"hub.store={store_uri}", "--set", "hub.namespace=tester",
            "--set", f"work_dir={tmp_path / 'w'}"]
    assert run_cli("run", TINY, "--only", "select", *args) == 0
    out = export_rows(store_uri, "tester/sel-select", tmp_path)
    assert [r["instruction"] for r in out] == ["Write add.", "Another task entirely."]
    assert out[0]["messages"][1]["content"] == out[0]["response"]
    manifest = json.loads(store.read_text("tester/sel-select", "main", "manifest.json"))
    assert manifest["drops"] == {"not_passed": 1} and manifest["rows_out"] == 2


def policy_rows():
    """Three tasks: A passed 2 of 4 samples (two distinct passing responses, one twice), B 1 of
    4, C 3 of 3 (all three passing). Test strengths: A 0.5 and 1.0, B not measured, C 0.25,
    0.75, 0.75."""
    def row(task, code, status, rate, strength=None):
        return {**sample(task, status=status, code=code), "task_pass_rate": rate,
                "test_strength": strength, "mutation_skipped": "" if strength is not None
                else "not_passed" if status != "pass" else "no_mutable_code"}  # fmt: skip

    return [
        row("Task A.", "def add(a, b):\n    return a + b", "pass", 0.5, 0.5),
        row("Task A.", "def add(a, b):\n    return b + a", "pass", 0.5, 1.0),
        row("Task A.", "def add(a, b):\n    return a + b", "pass", 0.5, 0.5),  # the same again
        row("Task A.", "def add(a, b):\n    return a", "fail", 0.5),
        row("Task B.", "def add(a, b):\n    return sum((a, b))", "pass", 0.25),
        row("Task B.", "def add(a, b):\n    return a", "fail", 0.25),
        row("Task C.", "def add(a, b):\n    return a + b  # c1", "pass", 1.0, 0.25),
        row("Task C.", "def add(a, b):\n    return a + b  # c2", "pass", 1.0, 0.75),
        row("Task C.", "def add(a, b):\n    return a + b  # c3", "pass", 1.0, 0.75),
    ]


def test_policy_random_one_keeps_one_sample_per_task():
    kept, drops = run_select(policy_rows(), seed=7)
    assert sorted(r["instruction"] for r in kept) == ["Task A.", "Task B.", "Task C."]
    assert sorted(r for r, _ in drops) == ["duplicate_response"] + ["not_chosen"] * 3 + [
        "not_passed"] * 2


def test_policy_all_passing_keeps_every_distinct_passing_sample():
    kept, drops = run_select(policy_rows(), policy="all_passing")
    assert [r["instruction"] for r in kept] == ["Task A.", "Task A.", "Task B.", "Task C.",
                                                "Task C.", "Task C."]  # fmt: skip
    assert sorted(r for r, _ in drops) == ["duplicate_response", "not_passed", "not_passed"]


def test_min_task_pass_rate_drops_the_hard_tasks_under_any_policy():
    kept, drops = run_select(policy_rows(), min_task_pass_rate=0.5, policy="all_passing")
    assert [r["instruction"] for r in kept] == ["Task A.", "Task A.", "Task C.", "Task C.",
                                                "Task C."]  # fmt: skip
    assert [r for r, _ in drops].count("task_pass_rate_below_min") == 1
    kept, _ = run_select(policy_rows(), min_task_pass_rate=0.75, seed=7)
    assert [r["instruction"] for r in kept] == ["Task C."]
    card = SelectStage(SelectParams(min_task_pass_rate=0.75)).card_notes()
    assert "Policy `random_one`" in card and "at least 0.75 of the time" in card


def test_policy_strongest_tests_keeps_the_sample_whose_tests_caught_most():
    for seed in range(6):  # the seed only breaks ties (C's two 0.75) and picks among unmeasured
        kept, drops = run_select(policy_rows(), policy="strongest_tests", seed=seed)
        chosen = {r["instruction"]: r for r in kept}
        assert sorted(chosen) == ["Task A.", "Task B.", "Task C."]
        assert "b + a" in chosen["Task A."]["response"] and chosen["Task C."]["test_strength"] == 0.75
        assert chosen["Task B."]["test_strength"] is None  # unmeasured: still the task's one
        assert sorted(r for r, _ in drops) == ["duplicate_response"] + ["not_chosen"] * 3 + [
            "not_passed"] * 2
    picks = {run_select(policy_rows(), policy="strongest_tests", seed=s)[0][2]["response"]
             for s in range(12)}  # fmt: skip
    assert len(picks) == 2 and all("c1" not in p for p in picks)


def test_min_test_strength_drops_weak_and_unmeasured_tests_under_any_policy():
    kept, drops = run_select(policy_rows(), policy="all_passing", min_test_strength=0.75)
    assert [(r["instruction"], r["test_strength"]) for r in kept] == [
        ("Task A.", 1.0), ("Task C.", 0.75), ("Task C.", 0.75)]
    weak = sorted(detail for reason, detail in
                  ((d.reason, d.detail) for d in run_select_drops(policy_rows(), 0.75)))  # fmt: skip
    assert weak == ["0.25 < 0.75", "0.50 < 0.75", "0.50 < 0.75", "no_mutable_code < 0.75"]
    assert [r for r, _ in drops].count("test_strength_below_min") == 4
    card = SelectStage(SelectParams(policy="strongest_tests", min_test_strength=0.5)).card_notes()
    assert "Policy `strongest_tests`" in card and "caught at least 0.5 of their mutants" in card
    assert "test_strength" in SelectStage(SelectParams(policy="strongest_tests")).reads
    assert "test_strength" in SelectStage(SelectParams(min_test_strength=0.1)).reads


def test_the_card_counts_the_pairs_each_policy_and_threshold_would_give():
    stage = SelectStage(SelectParams(seed=7))
    chunk = stage.process(policy_rows())
    assert len([r for r in stage.finalize(iter(chunk.kept)) if isinstance(r, dict)]) == 3
    (figure,) = stage.figures()
    counts = {row[0]: (row[1], row[2]) for row in figure["rows"]}
    # candidates: A 0.5 and 1.0 (its duplicate gone), B unmeasured, C 0.25, 0.75, 0.75
    assert counts["none (the policies)"] == (3, 6)
    assert [counts[f"min_test_strength {t}"] for t in ("0.25", "0.5", "0.75", "1")] == [
        (2, 5), (2, 4), (2, 3), (1, 1)]
    assert [counts[f"min_task_pass_rate {t}"] for t in ("0.25", "0.5", "0.75", "1")] == [
        (3, 6), (2, 5), (1, 3), (1, 3)]
    assert "This revision used `random_one`" in figure["note"]


def run_select_drops(rows, least):
    stage = SelectStage(SelectParams(min_test_strength=least))
    return [d for d in stage.process(rows).dropped if d.reason == "test_strength_below_min"]


def test_policy_settings_are_checked_and_leave_the_fingerprint_at_their_defaults():
    import pytest

    from builder.errors import RecipeError

    with pytest.raises(RecipeError, match="'stages.select.policy' must be 'random_one' or 'all_passing' or 'strongest_tests', got 'best'"):
        load_recipe(TINY, ["stages.select.policy=best"])
    too_high = r"'stages.select.min_task_pass_rate' must be <= 1, got 1.5"
    with pytest.raises(RecipeError, match=too_high):
        load_recipe(TINY, ["stages.select.min_task_pass_rate=1.5"])
    assert "policy" not in SelectParams().fingerprint_items()
    assert SelectParams(policy="all_passing").fingerprint_items()["policy"] == "all_passing"
    # The pass-rate rule reads execute's column, so a dataset without it is named at plan time.
    assert "task_pass_rate" in SelectStage(SelectParams(min_task_pass_rate=0.5)).reads
    assert "task_pass_rate" not in SelectStage(SelectParams()).reads
    assert "test_strength" not in SelectStage(SelectParams()).reads
