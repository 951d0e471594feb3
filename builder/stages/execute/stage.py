"""`execute`: run the code and tests of every response sample in the sandbox.

The program is the response's fenced Python blocks, in order (the implementation, then the
tests). Every sample gets a status (`pass`, `fail`, `timeout`, `error`, or `no_code` when the
response has no Python block), a duration and a short error; nothing is dropped here, `select`
decides. Each sample also says why it failed (`exec_failure`) and how many asserts its program
has (`exec_asserts`), and each its task's figures: `task_samples`, `task_passed`,
`task_pass_rate` (see `task_figures.py`), so the dataset alone tells how hard each task was for
the model. Verdicts are cached by the program's hash and the sandbox settings (see
`verdict_cache.py`), so a rerun or a resume after `kill -9` executes nothing twice (`kill -9`
loses at most the batch in flight; Ctrl-C loses nothing finished: the sandbox pool cancels what
has not started and kills what runs, and the verdicts already in are committed). If the sandbox
itself keeps failing (`infra_error` after its own retries), the chunk fails and nothing is
published: a rerun retries just those programs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.errors import StageError
from builder.pipeline.resources import Resources
from builder.pipeline.rows import ChunkResult, Row, RowStage
from builder.pipeline.step import StepParams
from builder.pipeline.typed import bounded, runtime_only
from builder.sandbox import Program, SandboxLimits, get_sandbox
from builder.sandbox.local import HARNESS_VERSION
from builder.stages.execute.task_figures import TaskTally, count_asserts, failure_kind
from builder.stages.execute.verdict_cache import VerdictCache, program_key

log = logging.getLogger(__name__)

_PYTHON_BLOCK = re.compile(r"```(?:python|py|python3)[ \t]*\n(.*?)```", re.S | re.I)
_KEPT_OUTPUT = 1000  # characters of stdout/stderr kept per sample


@dataclass
class ExecuteParams(StepParams):
    code_column: str = "response"
    task_column: str = "instruction_id"  # the samples of one task share it
    timeout_s: float = bounded(10.0, gt=0)
    memory_mb: int = bounded(4096, ge=1)
    # Programs per sandbox call: verdicts are committed per batch, so a kill re-runs at most one.
    batch_size: int = runtime_only(16, ge=1)
    workers: int = runtime_only(0, ge=0)  # sandbox workers; 0: every core


def program_from_response(text: str | None) -> str | None:
    """The fenced Python blocks of a response joined in order, or None if there is none."""
    blocks = [b.strip("\n") for b in _PYTHON_BLOCK.findall(text or "")]
    blocks = [b for b in blocks if b.strip()]
    return "\n\n\n".join(blocks) + "\n" if blocks else None


class ExecuteStage(RowStage):
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

    def fingerprint_extra(self) -> dict[str, Any]:
        # What can change a verdict, known without starting a worker pool: the backend, its
        # limits, the harness's version and the interpreter the programs run on. (A backend's
        # other settings, e.g. a docker image recipe, are in each verdict's cache key.)
        import platform

        return {
            "sandbox": self._sandbox_config(),
            "harness": HARNESS_VERSION,
            "python": platform.python_version(),
        }

    def _sandbox_config(self) -> dict[str, Any]:
        backend = getattr(self.context.sandbox, "backend", None) or "local"
        return {"backend": backend, "limits": dataclasses.asdict(self._limits())}

    def _limits(self):
        return SandboxLimits.for_timeout(
            self.params.timeout_s, memory_bytes=self.params.memory_mb << 20
        )

    def resources(self) -> Resources:
        """Locally one worker (the runner's process) whose sandbox runs `workers` programs at
        once (0: every core); on a cluster each worker asks for that many CPUs (at least one),
        and its sandbox runs as many programs at once as it was given CPUs."""
        return Resources(cpus=float(max(1, self.params.workers)))

    def _open(self):
        """The worker's sandbox pool and verdict cache, opened on its first chunk."""
        config = self._sandbox_config()
        options: dict[str, Any] = {"limits": self._limits()}
        resources = self.worker_resources
        slots = self.params.workers or resources.cpus  # None: the sandbox's default, every core
        if slots:
            options["workers"] = slots
        key = json.dumps({**config, "workers": slots}, sort_keys=True)
        sandbox = resources.get(
            ("sandbox", key), lambda: get_sandbox(config["backend"], **options), group="sandbox"
        )
        path = str(Path(self.context.work_dir) / "cache" / "execute.sqlite")
        cache = resources.get(
            ("verdicts", path), lambda: resources.open_on_driver(VerdictCache, path)
        )
        return sandbox, cache

    def process(self, rows: list[Row]) -> ChunkResult:
        sandbox, cache = self._open()
        fingerprint = sandbox.settings_fingerprint()
        programs = [program_from_response(row.get(self.params.code_column)) for row in rows]
        keys = [program_key(p, fingerprint) if p is not None else None for p in programs]
        verdicts = cache.get_many([k for k in keys if k])
        stats = Counter(cache_hits=len(verdicts))
        missing = {k: p for k, p in zip(keys, programs) if k and k not in verdicts}
        stats["cache_misses"] = len(missing)
        self._run(sandbox, cache, missing, verdicts)
        result = ChunkResult(stats=stats)
        for row, key, program in zip(rows, keys, programs):
            verdict = verdicts.get(key) if key else None
            columns = _columns(verdict, key)
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

    def card_notes(self) -> str:
        return (
            "Every sample is kept with its verdict (`exec_status`), why it failed "
            "(`exec_failure`: `assertion` for a failed test, the exception's type for any other "
            "error, `timeout`, `memory_limit`, `no_code`) and the number of `assert` statements "
            "its program has (`exec_asserts`: 0 means its pass proves little). Each row also "
            f"carries its task's figures (the rows sharing `{self.params.task_column}`): "
            "`task_samples` (those that reached this step), `task_passed` and `task_pass_rate`."
        )

    def _run(self, sandbox, cache, missing: dict[str, str], verdicts: dict[str, dict]) -> None:
        items = list(missing.items())
        for start in range(0, len(items), self.params.batch_size):
            batch = items[start : start + self.params.batch_size]
            fresh: dict[str, dict] = {}
            try:
                for result in sandbox.run_iter([Program(id=key, code=code) for key, code in batch]):
                    fresh[result.id] = _verdict(result)
            finally:  # interrupted (Ctrl-C): what finished is kept, the rerun starts from there
                cache.put_many(fresh)
            broken = [k for k, v in fresh.items() if v["status"] == "infra_error"]
            if broken:
                raise StageError(
                    f"execute: the {sandbox.name} sandbox failed on {len(broken)} programs "
                    f"({fresh[broken[0]]['error']}); finished verdicts are cached, rerun to retry"
                )
            verdicts.update(fresh)


def _verdict(result) -> dict:
    return {
        "status": result.status,
        "duration_s": round(result.duration_s, 4),
        "exit_code": result.exit_code,
        "error": result.error[:500],
        "stdout": result.stdout[:_KEPT_OUTPUT],
        "stderr": result.stderr[-_KEPT_OUTPUT:],  # the end of a traceback says most
    }


def _columns(verdict: dict | None, key: str | None) -> Row:
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
        "exec_program_hash": key,
    }
