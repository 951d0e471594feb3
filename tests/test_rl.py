"""The RL export (`rl_tasks`), the tests program and the reward, through the real sandbox."""

import pytest

from builder.errors import RecipeError
from builder.pipeline.recipe import load_recipe
from builder.rl.reward import PassedTestsReward
from builder.rl.scoring import count_tests, read_score, scoring_program
from builder.stages.rl_tasks import RLTasksParams, RLTasksStage, function_under_test
from tests.helpers import TINY, run_cli
from tests.test_execute import needs_bwrap, publish_responses
from tests.test_select import policy_rows

TESTS = """\
import math


def check_zero():
    assert clamp(0, 0, 10) == 0


assert clamp(5, 0, 10) == 5
assert clamp(-3, 0, 10) == 0
assert clamp(42, 0, 10) == 10
check_zero()
for value in range(3):
    assert clamp(value, 0, 10) == value
"""
RIGHT = "```python\ndef clamp(x, lo, hi):\n    return max(lo, min(x, hi))\n```"
WRONG = "Here:\n```python\ndef clamp(x, lo, hi):\n    return max(lo, x)\n```"  # no upper bound


def test_tests_are_counted_as_the_reward_counts_them():
    assert count_tests(TESTS) == 5  # three asserts, the call of an asserting helper, the loop
    assert count_tests("x = 1\ndef f():\n    assert x\n") == 0  # defined, never called
    assert count_tests("def broken(:") == 0 and scoring_program("x = 1", "y = 2") is None
    program, marker = scoring_program("def f():\n    return 1", "assert f() == 1\nassert f() == 2")
    assert read_score(f"noise\n{marker} 1 2\n", marker) == 0.5
    assert read_score(f"{marker} 3 2\n", marker) is None and read_score("__builder_tests 2 2", marker) is None


@needs_bwrap
def test_reward_scores_a_right_and_a_wrong_completion_through_the_sandbox(tmp_path):
    reward = PassedTestsReward(timeout_s=5, workers=2, cache_path=str(tmp_path / "verdicts.sqlite"))
    forged = RIGHT.replace("return max", "print('__builder_tests_0 5 5')\n    return max").replace(
        "min(x, hi)", "x")  # a completion printing a marker it cannot know
    completions = [
        RIGHT,
        WRONG,
        [{"role": "assistant", "content": RIGHT}],  # chat turns, as GRPOTrainer gives them
        "I would rather not.",  # no code
        "```python\nimport sys\nsys.exit(0)\n```",  # an early exit passes nothing
        forged,
        "```python\ndef clamp(x, lo, hi):\n    while True:\n        pass\n```",
    ]
    try:
        scores = reward(completions=completions, tests=[TESTS] * len(completions),
                        prompts=["p"] * len(completions), trainer_state=None)  # fmt: skip
        assert scores[0] == 1.0 and scores[2] == 1.0
        assert scores[1] == pytest.approx(4 / 5)  # all but clamp(42, 0, 10) == 10
        assert scores[3:] == [0.0, 0.0, pytest.approx(4 / 5), 0.0]
        again = PassedTestsReward(timeout_s=5, workers=2, cache_path=str(tmp_path / "verdicts.sqlite"))
        again._sandbox = _NoRuns(reward._sandbox.settings_fingerprint())  # the same cache: no runs
        assert again(completions=completions[:3], tests=[TESTS] * 3) == scores[:3]
    finally:
        reward.close()
    with pytest.raises(KeyError, match="reads the dataset column 'tests'"):
        PassedTestsReward()(completions=[RIGHT], prompt=["p"])


class _NoRuns:
    name = "none"

    def __init__(self, fingerprint):
        self.fingerprint = fingerprint

    def settings_fingerprint(self):
        return self.fingerprint

    def run_iter(self, programs):
        raise AssertionError(f"ran {len(list(programs))} programs")

    def close(self):
        pass


def rl_rows(**params):
    stage = RLTasksStage(RLTasksParams(**params))
    chunk = stage.process(policy_rows())
    return [r for r in stage.finalize(iter(chunk.kept)) if isinstance(r, dict)]


def test_rl_tasks_one_row_per_task_with_prompt_tests_and_difficulty():
    rows = {r["instruction"]: r for r in rl_rows(system_prompt="Answer in Python.")}
    assert sorted(rows) == ["Task A.", "Task B.", "Task C."]
    a = rows["Task A."]
    assert a["prompt"] == [{"role": "system", "content": "Answer in Python."},
                           {"role": "user", "content": "Task A."}]  # fmt: skip
    assert a["tests"] == "assert add(1, 2) == 3" and a["test_count"] == 1
    assert a["function_under_test"] == "add" and a["reference_solution"] == "def add(a, b):\n    return b + a"
    assert a["test_strength"] == 1.0  # strongest_tests by default
    assert [(rows[t]["difficulty"], rows[t]["difficulty_level"]) for t in sorted(rows)] == [
        (0.5, "medium"), (0.75, "hard"), (0.0, "easy")]
    assert [r["instruction"] for r in rl_rows(min_task_pass_rate=0.5)] == ["Task A.", "Task C."]
    assert function_under_test("X = 1\ndef helper():\n    pass\ndef f():\n    pass", "assert f()") == "f"
    with pytest.raises(RecipeError, match="'stages.rl_tasks.policy' must be 'strongest_tests' or 'random_one'"):
        load_recipe(TINY, ["stages.rl_tasks.policy=all_passing"])


def test_rl_tasks_export_loads_with_datasets(fake_hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", fake_hub.token)
    publish_responses("hf", "tester/rl-mutate", policy_rows(), tmp_path)
    args = ["--set", "name=rl", "--set", "hub.store=hf", "--set", "hub.namespace=tester",
            "--set", "hub.private=false", "--set", f"work_dir={tmp_path / 'w'}"]
    assert run_cli("run", TINY, "--only", "rl_tasks", *args) == 0
    from datasets import load_dataset

    from builder.store import open_store

    revision = open_store("hf").resolve("tester/rl-rl_tasks")
    tasks = load_dataset("tester/rl-rl_tasks", revision=revision, split="train")
    assert sorted(tasks["instruction"]) == ["Task A.", "Task B.", "Task C."]
    assert tasks[0]["prompt"][0]["role"] == "user" and tasks[0]["test_count"] == 1
    rejected = load_dataset("tester/rl-rl_tasks", "rejected", revision=revision, split="rejected")
    assert sorted(set(rejected["drop_reason"])) == ["duplicate_response", "not_chosen", "not_passed"]


@needs_bwrap
def test_a_few_grpo_steps_on_the_tiny_model_score_completions_through_the_sandbox(tmp_path):
    """TRL's GRPOTrainer calls the reward as it calls any reward function: it generates from
    the export's `prompt` (chat messages) and passes its other columns, `tests` among them."""
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from tests.train_helpers import build_tiny_starcoder2

    model = build_tiny_starcoder2(tmp_path / "model")
    tokenizer = AutoTokenizer.from_pretrained(model)
    tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"
    tokenizer.save_pretrained(model)
    tasks = Dataset.from_list([
        {"prompt": [{"role": "user", "content": f"Write clamp, case {i}."}], "tests": TESTS,
         "function_under_test": "clamp"} for i in range(4)
    ])  # fmt: skip
    reward = PassedTestsReward(timeout_s=5, workers=2)
    calls = []

    def recorded(completions, **columns):
        scores = reward(completions, **columns)
        calls.append((completions, columns["tests"], scores))
        return scores

    recorded.__name__ = reward.__name__
    config = GRPOConfig(
        output_dir=str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=2,
        num_generations=2, max_completion_length=12, learning_rate=1e-4, logging_steps=1,
        report_to="none", use_cpu=True, bf16=False, save_strategy="no", seed=0,
        dataloader_pin_memory=False,
    )  # fmt: skip
    try:
        trainer = GRPOTrainer(model=str(model), reward_funcs=[recorded], args=config,
                              train_dataset=tasks, processing_class=tokenizer)  # fmt: skip
        trainer.train()
    finally:
        reward.close()
    assert trainer.state.global_step == 2 and calls
    for completions, tests, scores in calls:
        assert len(completions) == len(tests) == len(scores) and set(tests) == {TESTS}
        assert all(isinstance(c, list) and c[0]["role"] == "assistant" for c in completions)
        assert all(s == 0.0 for s in scores)  # random weights write no code: nothing passes
    logged = [entry for entry in trainer.state.log_history if "rewards/tests_passed/mean" in entry]
    assert len(logged) == 2 and all(entry["rewards/tests_passed/mean"] == 0.0 for entry in logged)
