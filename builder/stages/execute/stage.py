"""`execute`: run the code and tests of every response sample in the sandbox.

The program is the response's fenced Python blocks, in order (the implementation, then the
tests). Every sample gets a status (`pass`, `fail`, `timeout`, `error`, or `no_code` when the
response has no Python block), a duration and a short error; nothing is dropped here, `select`
decides. Each sample also says why it failed (`exec_failure`) and how many asserts its program
has (`exec_asserts`), and each its task's figures: `task_samples`, `task_passed`,
`task_pass_rate` (see `task_figures.py`), so the dataset alone tells how hard each task was for
the model. Verdicts are cached by the program's hash and the sandbox settings (see
`sandbox/verdict_cache.py`), so a rerun or a resume after `kill -9` executes nothing twice
(`kill -9` loses at most the batch in flight; Ctrl-C loses nothing finished: the sandbox pool
cancels what has not started and kills what runs, and the verdicts already in are committed).
If the sandbox
itself keeps failing (`infra_error` after its own retries), the chunk fails and nothing is
published: a rerun retries just those programs.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from builder.config.fields import bounded, runtime_only
from builder.pipeline.rows import ChunkResult, Row
from builder.pipeline.step import StepParams
from builder.sandbox.response_code import program_from_response
from builder.stages.execute.figures import pass_rate_figure
from builder.stages.execute.sandbox_stage import SandboxStage
from builder.stages.execute.task_figures import TaskTally, count_asserts, failure_kind

log = logging.getLogger(__name__)



@dataclass
class ExecuteParams(StepParams):
    code_column: str = "response"
    task_column: str = "instruction_id"  # the samples of one task share it
    timeout_s: float = bounded(10.0, gt=0)
    memory_mb: int = bounded(4096, ge=1)
    # Programs per sandbox call: verdicts are committed per batch, so a kill re-runs at most one.
    batch_size: int = runtime_only(16, ge=1)
    workers: int = runtime_only(0, ge=0)  # sandbox workers; 0: every core


class ExecuteStage(SandboxStage):
    name = "execute"
    params_class = ExecuteParams
    adds = (
        "exec_status",
        "exec_duration_s",
        "exec_error",
        "exec_stdout",
        "exec_stderr",
        "exec_program_hash",
        "exec_failure",
        "exec_asserts",
        "task_samples",
        "task_passed",
        "task_pass_rate",
    )
    chunk_size = 1024
    version = 2  # 2: exec_failure, exec_asserts and the task columns
    description = "Every response sample's code and tests, run in a sandbox: status for each."

    params: ExecuteParams

    def __init__(self, params, context=None):
        super().__init__(params, context)
        self.reads = (params.code_column,)
        self._tally = TaskTally(params.task_column)

    def process(self, rows: list[Row]) -> ChunkResult:
        programs = [program_from_response(row.get(self.params.code_column)) for row in rows]
        result = ChunkResult(stats=Counter())
        stats = result.stats
        for row, program, verdict in zip(rows, programs, self.verdicts(programs, stats)):
            columns = _columns(verdict)
            columns["exec_failure"] = failure_kind(columns["exec_status"], columns["exec_error"])
            columns["exec_asserts"] = count_asserts(program)
            result.kept.append({**row, **columns})
            stats[f"status:{columns['exec_status']}"] += 1
            if columns["exec_failure"]:
                stats[f"failure:{columns['exec_failure']}"] += 1
        return result

    def survey(self, rows: Iterable[Row]) -> None:
        self._tally = TaskTally(self.params.task_column)
        for row in rows:
            self._tally.add(row)

    def finalize(self, rows: Iterable[Row]) -> Iterator[Row]:
        for row in rows:
            yield {**row, **self._tally.columns(row)}

    def figures(self) -> list[dict]:
        return [pass_rate_figure(self._tally.rates())]

    def card_notes(self) -> str:
        return (
            "Every sample is kept with its verdict (`exec_status`), why it failed "
            "(`exec_failure`: `assertion` for a failed test, the exception's type for any other "
            "error, `timeout`, `memory_limit`, `no_code`) and the number of `assert` statements "
            "its program has (`exec_asserts`: 0 means its pass proves little). Each row also "
            f"carries its task's figures (the rows sharing `{self.params.task_column}`): "
            "`task_samples` (those that reached this step), `task_passed` and `task_pass_rate`."
        )


def _columns(verdict: dict | None) -> Row:
    if verdict is None:
        return {
            "exec_status": "no_code",
            "exec_duration_s": 0.0,
            "exec_error": "the response has no Python code block",
            "exec_stdout": "",
            "exec_stderr": "",
            "exec_program_hash": None,
        }
    return {
        "exec_status": verdict["status"],
        "exec_duration_s": verdict["duration_s"],
        "exec_error": verdict["error"],
        "exec_stdout": verdict["stdout"],
        "exec_stderr": verdict["stderr"],
        "exec_program_hash": verdict["key"],
    }
