"""Each benchmark behind one small interface: how its problems load, how a problem becomes a
prompt, what a completion is graded as, how its samples are graded and which settings decide
the grade. `run.py` and the `eval` step only ask `BENCHMARKS[name]`.

To add a benchmark: a loader that returns an object with `benchmark` (its name) and `problems`
(task id -> problem), a grader, a `Benchmark` subclass here, an entry in `BENCHMARKS` (and its
aliases in `ALIASES`), a row in `model_index.py` for the model card, and a test that grades a
known-right and a known-wrong sample.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from builder.errors import BuilderError
from builder.evaluation.ds1000 import DS1000Result, completion_prompt, grade_ds1000, load_ds1000
from builder.evaluation.evalplus_data import EVALPLUS_BENCHMARKS, load_evalplus
from builder.evaluation.evalplus_grader import GradeOptions, Sample, grade
from builder.evaluation.livecodebench import (
    LCBResult,
    grade_livecodebench,
    instruction,
    load_livecodebench,
)
from builder.evaluation.prompts import build_prompt, load_prompts, wrap
from builder.evaluation.results import BenchmarkResult

ALIASES = {"humaneval": "humaneval+", "mbpp": "mbpp+", "humanevalplus": "humaneval+",
           "mbppplus": "mbpp+", "ds1000": "ds-1000", "lcb": "livecodebench"}  # fmt: skip


@dataclass(frozen=True)
class Selection:
    """Which problems: LiveCodeBench's release and contest-date window (YYYY-MM-DD, inclusive)."""

    release: str | None = None
    start_date: str | None = None
    end_date: str | None = None


@dataclass(frozen=True)
class GradingSetup:
    backend: str = "local"
    workers: int | None = None
    cache_dir: Path = Path("~/.cache/code-instruct-builder/eval")
    options: GradeOptions = field(default_factory=GradeOptions)


class Benchmark:
    name: str = ""

    def load(self, data_file: str | None, selection: Selection) -> Any:
        """The problems (an object with `benchmark` and `problems`), from `data_file` or the
        copy the package ships (or the Hub's, for LiveCodeBench)."""
        raise NotImplementedError

    def prompt(self, data: Any, problem: dict, template: str, tokenizer=None) -> str:
        raise NotImplementedError

    def graded_text(self, data: Any, task_id: str, code: str) -> str:
        """What is graded for a completion's code (default: the code alone)."""
        return code

    def grade(self, data: Any, samples: list[Sample], setup: GradingSetup, extras=None):
        raise NotImplementedError

    def settings(self, setup: GradingSetup) -> dict[str, Any]:
        """Everything besides the samples that decides a grade (in the results and card)."""
        raise NotImplementedError


class EvalPlus(Benchmark):
    """HumanEval+ and MBPP+, graded exactly as EvalPlus grades them."""

    def __init__(self, name: str):
        self.name = name

    def load(self, data_file, selection):
        return load_evalplus(self.name, data_file)

    def prompt(self, data, problem, template, tokenizer=None):
        return build_prompt(data.dataset, problem, template, tokenizer)

    def graded_text(self, data, task_id, code):
        return data.problems[task_id]["prompt"] + code  # EvalPlus grades prompt + completion

    def grade(self, data, samples, setup, extras=None):
        verdicts = grade(data, samples, backend=setup.backend, workers=setup.workers,
                         options=setup.options, cache_dir=setup.cache_dir)  # fmt: skip
        return BenchmarkResult.from_grading(data, verdicts, self.settings(setup), extras)

    def settings(self, setup):
        return {**dataclasses.asdict(setup.options), "sandbox": setup.backend,
                "evalplus": metadata.version("evalplus")}  # fmt: skip


class DS1000(Benchmark):
    name = "ds-1000"

    def load(self, data_file, selection):
        return load_ds1000(data_file)

    def prompt(self, data, problem, template, tokenizer=None):
        return wrap(template, *completion_prompt(problem), tokenizer)

    def grade(self, data, samples, setup, extras=None):
        verdicts = grade_ds1000(data, samples, backend=setup.backend, workers=setup.workers)
        return DS1000Result(data, verdicts, self.settings(setup), extras)

    def settings(self, setup):
        return {"sandbox": setup.backend, "timeout_s": 120}


class LiveCodeBench(Benchmark):
    name = "livecodebench"

    def load(self, data_file, selection):
        return load_livecodebench(
            data_file, selection.release, selection.start_date, selection.end_date
        )

    def prompt(self, data, problem, template, tokenizer=None):
        response = load_prompts().tasks["livecodebench"]["response_prefix"]
        return wrap(template, instruction(problem), response, tokenizer)

    def grade(self, data, samples, setup, extras=None):
        verdicts = grade_livecodebench(data, samples, backend=setup.backend, workers=setup.workers)
        return LCBResult(data, verdicts, self.settings(setup), extras)

    def settings(self, setup):
        return {"sandbox": setup.backend, "timeout_s_per_test": 6}


BENCHMARKS: dict[str, Benchmark] = {
    **{name: EvalPlus(name) for name in EVALPLUS_BENCHMARKS},
    "ds-1000": DS1000(),
    "livecodebench": LiveCodeBench(),
}


def benchmark_name(name: str) -> str:
    name = ALIASES.get(name.strip().lower(), name.strip().lower())
    if name not in BENCHMARKS:
        raise BuilderError(f"unknown benchmark '{name}' (known: {', '.join(BENCHMARKS)})")
    return name
