"""The reward for reinforcement learning on a task's own tests: the share of them a completion
passes, run in our sandbox.

`PassedTestsReward` is called the way TRL's `GRPOTrainer` calls a reward function: the completions
(plain strings, or chat turns `[{"role": "assistant", "content": ...}]`) and every column of the
dataset as a keyword argument, one value per completion; it reads `tests` (the `rl_tasks`
export's column) and returns one float per completion in [0, 1]:

    from trl import GRPOTrainer
    from builder.rl.reward import PassedTestsReward

    reward = PassedTestsReward(sandbox="local", timeout_s=10)
    trainer = GRPOTrainer(model=..., reward_funcs=[reward], train_dataset=rl_tasks, ...)

A completion's program is its fenced Python blocks (as `execute` reads a response), followed by
the task's tests rewritten to count passes (`scoring.py`). No code, a program that does
not compile, exits early, times out or crashes outside a test scores 0; one the sandbox itself
failed on scores None, which TRL leaves out. Programs run in batches
through the sandbox, and each verdict is kept by the program's hash and the sandbox settings (in
memory, or in `cache_path`, the same SQLite cache `execute` keeps), so a completion seen before is
not run again.

Limits: a completion shares its process with the tests, so it can defeat assertion tests the
ways such tests can always be defeated (an object equal to everything, `sys.modules` patched);
the marker line is keyed by a digest of the program so that printing a plausible one does not
work. open-r1's `code_reward` is another shape: it reads stdin/stdout cases (README, "RL").
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from builder.rl.scoring import read_score, scoring_program
from builder.sandbox import SandboxLimits, get_sandbox
from builder.sandbox.response_code import program_from_response
from builder.sandbox.verdict_cache import VerdictCache, program_key, run_and_cache

log = logging.getLogger(__name__)
MEMORY = 100_000  # verdicts kept in memory (the SQLite cache, if any, keeps them all)


class PassedTestsReward:
    """Fraction of the row's tests that each completion passes (see the module docstring)."""

    __name__ = "tests_passed"  # what TRL logs the reward as

    def __init__(
        self,
        sandbox: str = "local",
        timeout_s: float = 10.0,
        memory_mb: int = 4096,
        workers: int | None = None,
        cache_path: str | None = None,
        tests_column: str = "tests",
        batch_size: int = 64,
    ):
        self.backend = sandbox
        self.limits = SandboxLimits.for_timeout(timeout_s, memory_bytes=memory_mb << 20)
        self.workers = workers
        self.cache_path = cache_path
        self.tests_column = tests_column
        self.batch_size = batch_size
        self._sandbox = None
        self._cache: VerdictCache | None = None
        self._memory: dict[str, dict] = {}

    def __call__(self, completions: Sequence[Any], **columns: Any) -> list[float | None]:
        if self.tests_column not in columns:
            raise KeyError(
                f"PassedTestsReward reads the dataset column {self.tests_column!r}; the columns "
                f"given were {sorted(k for k in columns if not k.startswith(('trainer_', 'log_')))}"
            )
        tests = columns[self.tests_column]
        programs = [_program(_text(c), t) for c, t in zip(completions, tests, strict=True)]
        verdicts = self._verdicts([p[0] if p else None for p in programs])
        scores: list[float | None] = []
        for program, verdict in zip(programs, verdicts):
            if program is not None and verdict is None:  # the sandbox failed, not the completion
                scores.append(None)  # TRL leaves a None out of the advantage (NaN)
            elif program is None or verdict["status"] != "pass":
                scores.append(0.0)
            else:
                scores.append(read_score(verdict["stdout"], program[1]) or 0.0)
        return scores

    def close(self) -> None:
        if self._sandbox is not None:
            self._sandbox.close()
            self._sandbox = None
        if self._cache is not None:
            self._cache.close()
            self._cache = None

    def _open(self):
        if self._sandbox is None:
            options: dict[str, Any] = {"limits": self.limits}
            if self.workers:
                options["workers"] = self.workers
            self._sandbox = get_sandbox(self.backend, **options)
        if self.cache_path and self._cache is None:
            self._cache = VerdictCache(self.cache_path)
        return self._sandbox

    def _verdicts(self, programs: list[str | None]) -> list[dict | None]:
        sandbox = self._open()
        fingerprint = sandbox.settings_fingerprint()
        keys = [program_key(p, fingerprint) if p else None for p in programs]
        wanted = sorted({k for k in keys if k and k not in self._memory})
        if self._cache is not None and wanted:
            self._remember(self._cache.get_many(wanted))
        missing = {k: p for k, p in zip(keys, programs) if k and k not in self._memory}
        # The score is on stdout's last line: its tail is kept.
        for fresh in run_and_cache(sandbox, self._cache, missing, self.batch_size, True):
            broken = [v["error"] for v in fresh.values() if v["status"] == "infra_error"]
            if broken:
                log.warning("the %s sandbox failed on %d programs (%s): no reward for them",
                            sandbox.name, len(broken), broken[0])  # fmt: skip
            self._remember({k: v for k, v in fresh.items() if v["status"] != "infra_error"})
        return [self._memory.get(k) if k else None for k in keys]

    def _remember(self, verdicts: dict[str, dict]) -> None:
        """Keep what scoring reads (the status, the end of stdout) for the most recent
        `MEMORY` programs: a long training run sees millions."""
        for key, verdict in verdicts.items():
            self._memory.pop(key, None)
            self._memory[key] = {"status": verdict["status"], "stdout": verdict["stdout"][-300:]}
        while len(self._memory) > MEMORY:
            del self._memory[next(iter(self._memory))]


def _text(completion: Any) -> str:
    """A completion's text: a string, or the content of its chat turns."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return str(completion.get("content") or "")
    return "\n".join(str(turn.get("content") or "") for turn in completion or ())


def _program(completion: str, tests: str | None) -> tuple[str, str] | None:
    code = program_from_response(completion)
    if code is None or not tests:
        return None
    return scoring_program(code, tests)
