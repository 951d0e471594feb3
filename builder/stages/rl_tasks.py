"""`rl_tasks`: the executed tasks in the shape reinforcement-learning trainers take.

One row per task (the rows sharing a whitespace-normalised instruction), chosen among its
well-formed passing samples as `select` chooses (same rules, same drop reasons; by default the
sample whose tests caught the most mutants, `strongest_tests`, since its tests become the
reward). Published columns, beside the input's for lineage:

- `prompt`: the instruction as chat messages (`[{"role": "user", ...}]`, after an optional
  system turn), the column TRL's `GRPOTrainer` reads;
- `tests`: the chosen sample's test block, a program that runs after the completion's code
  (`builder.rl.reward.PassedTestsReward` counts how many of its tests pass); `test_count`:
  how many tests it holds, as the reward counts them;
- `function_under_test`: the name the tests call that the implementation defines;
  `reference_solution`: the implementation that passed them;
- `difficulty`: 1 - the task's pass rate in `execute` (0: every sample passed), and
  `difficulty_level`: `easy` (pass rate 0.8 or more), `medium` (0.4 or more) or `hard`.

Tasks no sample passed are not here: their tests were never shown to be satisfiable.
"""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from builder.config.fields import bounded
from builder.pipeline.rows import Drop, Row
from builder.pipeline.step import StepParams
from builder.rl.scoring import count_tests
from builder.stages.generation.parse import parse_response
from builder.stages.select.stage import SelectStage, _untagged


@dataclass
class RLTasksParams(StepParams):
    policy: Literal["strongest_tests", "random_one"] = "strongest_tests"  # as in select
    seed: int = bounded(0, ge=0)
    min_task_pass_rate: float = bounded(0.0, ge=0, le=1)
    min_test_strength: float = bounded(0.0, ge=0, le=1)
    incomplete_markers: list[str] = field(
        default_factory=lambda: ["todo", "fixme", "your code here"]
    )
    system_prompt: str | None = None  # a system turn before the instruction, if any


class RLTasksStage(SelectStage):
    name = "rl_tasks"
    params_class = RLTasksParams
    reads = ("instruction", "response", "exec_status", "task_pass_rate")
    adds = ("prompt", "tests", "test_count", "function_under_test", "reference_solution",
            "difficulty", "difficulty_level")  # fmt: skip
    version = 1
    description = "One task per row for RL: chat prompt, tests as a program, difficulty."

    params: RLTasksParams

    def _reject_reason(self, row: Row) -> tuple[str, str]:
        reason, detail = super()._reject_reason(row)
        if reason:
            return reason, detail
        tests = parse_response(row["response"], untagged=_untagged(row)).value.tests
        if count_tests(tests) == 0:
            return "no_countable_tests", "no top-level statement of the tests asserts"
        return "", ""

    def _sft_row(self, row: Row) -> Row:  # the chosen sample of a task, as an RL task
        parts = parse_response(row["response"], untagged=_untagged(row)).value
        system = [{"role": "system", "content": self.params.system_prompt}]
        prompt = [{"role": "user", "content": row["instruction"]}]
        rate = row["task_pass_rate"]
        return {
            **row,
            "prompt": (system if self.params.system_prompt else []) + prompt,
            "tests": parts.tests,
            "test_count": count_tests(parts.tests),
            "function_under_test": function_under_test(parts.implementation, parts.tests),
            "reference_solution": parts.implementation,
            "difficulty": round(1 - rate, 4),
            "difficulty_level": "easy" if rate >= 0.8 else "medium" if rate >= 0.4 else "hard",
        }

    def finalize(self, rows: Iterable[Row]) -> Iterator[Row | Drop]:
        self._levels = Counter()
        for item in super().finalize(rows):
            if not isinstance(item, Drop):
                self._levels[item["difficulty_level"]] += 1
            yield item

    def figures(self) -> list[dict]:
        levels = getattr(self, "_levels", Counter())
        rows = [[level, levels[level]] for level in ("easy", "medium", "hard")]
        note = "easy: pass rate 0.8 or more; medium: 0.4 or more; hard: below."
        return [{"title": "Tasks by difficulty", "headers": ["level", "tasks"], "rows": rows,
                 "note": note}]  # fmt: skip

    def card_notes(self) -> str:
        p = self.params
        which = (
            "the one whose tests caught the most mutants (`test_strength`)"
            if p.policy == "strongest_tests" else f"one chosen at random with seed {p.seed}"
        )  # fmt: skip
        return (
            f"One row per task, for reinforcement learning (policy `{p.policy}`: of its "
            f"well-formed passing samples, {which}). `prompt` is the instruction as chat "
            "messages; `tests` is the chosen sample's test block, which "
            "`builder.rl.reward.PassedTestsReward` runs after a completion's code to score the "
            "share of tests passed (`test_count` of them); `function_under_test` and "
            "`reference_solution` come from the same sample; `difficulty` is 1 - the task's "
            "pass rate in `execute` (`difficulty_level`: easy at 0.8 or more, medium at 0.4 or "
            "more, else hard). The tests are assertions on a function, not stdin/stdout cases."
        )


def function_under_test(implementation: str, tests: str) -> str:
    """The first name the implementation defines at top level that the tests use ("" if none
    can be told)."""
    try:
        defined = [
            node.name
            for node in ast.parse(implementation).body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        ]
        used = {n.id for n in ast.walk(ast.parse(tests)) if isinstance(n, ast.Name)}
    except (SyntaxError, ValueError, RecursionError):
        return ""
    return next((name for name in defined if name in used), defined[0] if defined else "")
