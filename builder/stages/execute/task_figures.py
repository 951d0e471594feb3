"""Why a sample failed, and how hard its task was: the per-sample and per-task columns of
`execute`.

`exec_failure` names why a sample did not pass, from its verdict: `assertion` (an
AssertionError: a test failed), the exception's type for any other uncaught exception
(`NameError`, `ValueError`, `SystemExit`, `MemoryError`, a class the program defined),
`memory_limit` (the sandbox's limit on all its processes), `timeout`, the compile error's
type for a program that could not run (`SyntaxError`), `no_code` (no Python block), `""` for
a pass. `exec_asserts` counts the `assert` statements of the program (0: it tests nothing, so
its pass proves little).

Per task (the rows sharing `task_column`, wherever they are in the dataset): `task_samples`
(the task's samples that reached `execute`; those `responses` dropped, e.g. cut off, are not
among them), `task_passed` and `task_pass_rate` (passed / samples).
"""

from __future__ import annotations

import ast
import re
from collections import Counter

_EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*)(?:\(\d+\))?(?::|$)")


def failure_kind(status: str, error: str) -> str:
    """The failure's name from a verdict's status and short error ("" for a pass)."""
    if status == "pass":
        return ""
    if status in ("timeout", "no_code"):
        return status
    if error.startswith("memory limit exceeded"):
        return "memory_limit"
    match = _EXCEPTION.match(error or "")
    if match is None:
        return status  # no exception named (a signal, an early exit): the status says it
    name = match.group(1).rsplit(".", 1)[-1]
    return "assertion" if name == "AssertionError" else name


def count_asserts(program: str | None) -> int:
    """`assert` statements in the program; 0 if it has none or does not parse."""
    if not program:
        return 0
    try:
        tree = ast.parse(program)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return 0
    return sum(isinstance(node, ast.Assert) for node in ast.walk(tree))


class TaskTally:
    """Samples and passes per task, gathered in `survey`, written in `finalize`."""

    def __init__(self, task_column: str):
        self.task_column = task_column
        self.samples: Counter = Counter()
        self.passed: Counter = Counter()

    def add(self, row: dict) -> None:
        task = row.get(self.task_column)
        if task is not None:
            self.samples[task] += 1
            self.passed[task] += row["exec_status"] == "pass"

    def columns(self, row: dict) -> dict:
        task = row.get(self.task_column)
        if task is None:  # a row with no task id is a task of its own
            samples, passed = 1, int(row["exec_status"] == "pass")
        else:
            samples, passed = self.samples[task], self.passed[task]
        return {"task_samples": samples, "task_passed": passed,
                "task_pass_rate": round(passed / samples, 4)}  # fmt: skip

    def rates(self) -> dict:
        """Each task's pass rate (rows without a task id are left out)."""
        return {task: self.passed[task] / n for task, n in self.samples.items()}
