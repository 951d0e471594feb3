"""What `builder eval` does: grade a samples file, or generate with a model, then grade."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

from builder.engines.base import Sampling
from builder.engines.cache import CompletionCache
from builder.engines.config import EngineConfig
from builder.engines.generator import EngineSpec, Generator, PromptSpec
from builder.engines.model import chat_tokenizer
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
from builder.evaluation.prompts import CHAT, build_prompt, completion_code, load_prompts, wrap
from builder.evaluation.results import BenchmarkResult
from builder.evaluation.samples import read_samples

log = logging.getLogger(__name__)

ALIASES = {"humaneval": "humaneval+", "mbpp": "mbpp+", "humanevalplus": "humaneval+",
           "mbppplus": "mbpp+", "ds1000": "ds-1000", "lcb": "livecodebench"}  # fmt: skip


@dataclass(frozen=True)
class Selection:
    """Which problems: LiveCodeBench's release and contest-date window (YYYY-MM-DD, inclusive)."""

    release: str | None = None
    start_date: str | None = None
    end_date: str | None = None


KNOWN = (*EVALPLUS_BENCHMARKS, "ds-1000", "livecodebench")


@dataclass(frozen=True)
class GradingSetup:
    backend: str = "local"
    workers: int | None = None
    cache_dir: Path = Path("~/.cache/code-instruct-builder/eval")
    options: GradeOptions = field(default_factory=GradeOptions)

    def settings(self, benchmark: str) -> dict:
        from importlib import metadata

        if benchmark == "ds-1000":
            return {"sandbox": self.backend, "timeout_s": 120}
        if benchmark == "livecodebench":
            return {"sandbox": self.backend, "timeout_s_per_test": 6}
        return {**dataclasses.asdict(self.options), "sandbox": self.backend,
                "evalplus": metadata.version("evalplus")}  # fmt: skip


@dataclass(frozen=True)
class GenerationSettings:
    backend: str = "transformers"
    n_samples: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 512
    seed: int = 0
    template: str = "sc2-instruct"
    batch_size: int = 8


def benchmark_name(name: str) -> str:
    name = ALIASES.get(name.strip().lower(), name.strip().lower())
    if name not in KNOWN:
        raise BuilderError(f"unknown benchmark '{name}' (known: {', '.join(KNOWN)})")
    return name


def load_benchmark(name: str, data_file: str | None, selection: Selection = Selection()):
    if name == "livecodebench":
        return load_livecodebench(
            data_file, selection.release, selection.start_date, selection.end_date
        )
    if name == "ds-1000":
        return load_ds1000(data_file)
    return load_evalplus(name, data_file)


def grade_any(data, samples: list[Sample], setup: GradingSetup, extras=None):
    if data.benchmark == "livecodebench":
        verdicts = grade_livecodebench(data, samples, backend=setup.backend, workers=setup.workers)
        return LCBResult(data, verdicts, setup.settings("livecodebench"), extras)
    if data.benchmark == "ds-1000":
        verdicts = grade_ds1000(data, samples, backend=setup.backend, workers=setup.workers)
        return DS1000Result(data, verdicts, setup.settings("ds-1000"), extras)
    verdicts = grade(data, samples, backend=setup.backend, workers=setup.workers,
                     options=setup.options, cache_dir=setup.cache_dir)  # fmt: skip
    return BenchmarkResult.from_grading(data, verdicts, setup.settings(data.benchmark), extras)


def grade_samples_file(path: str, benchmark: str, data_file: str | None, setup: GradingSetup,
                       selection: Selection = Selection()):  # fmt: skip

    data = load_benchmark(benchmark_name(benchmark), data_file, selection)
    return grade_any(data, read_samples(path, data), setup)


def evaluate_model(
    model: str,
    revision: str | None,
    benchmarks: list[str],
    data_file: str | None,
    setup: GradingSetup,
    gen: GenerationSettings,
    limit: int | None,
    selection: Selection = Selection(),
    engine: EngineConfig | None = None,
    resources=None,
) -> list:
    """Generate (through the engines and their completion cache), then grade, per benchmark.
    `engine`: the recipe's engine settings (dtype, threads, vLLM options); the backend, revision
    and batch size are `gen`'s. `resources` (a `WorkerResources`): where the engine is kept from
    one benchmark to the next (one model load, not one per benchmark); None: one per call."""
    if data_file and len(benchmarks) > 1:
        raise BuilderError("--data-file goes with a single benchmark")
    results = []
    for name in benchmarks:
        data = load_benchmark(benchmark_name(name), data_file, selection)
        task_ids = list(data.problems)[:limit] if limit else list(data.problems)
        samples, extras = generate_samples(
            model, revision, data, task_ids, gen, setup.cache_dir, engine, resources
        )
        results.append(grade_any(data, samples, setup, extras))
    return results


def _prompt(data, problem: dict, template: str, tokenizer=None) -> str:
    if data.benchmark == "ds-1000":
        return wrap(template, *completion_prompt(problem), tokenizer)
    if data.benchmark == "livecodebench":
        response = load_prompts().tasks["livecodebench"]["response_prefix"]
        return wrap(template, instruction(problem), response, tokenizer)
    return build_prompt(data.dataset, problem, template, tokenizer)


def generate_samples(
    model: str,
    revision: str | None,
    data,
    task_ids: list[str],
    gen: GenerationSettings,
    cache_dir: Path,
    engine: EngineConfig | None = None,
    resources=None,
) -> tuple[list[Sample], list[dict]]:
    tokenizer = chat_tokenizer(model, revision) if gen.template == CHAT else None
    prompts = [_prompt(data, data.problems[t], gen.template, tokenizer) for t in task_ids]
    config = dataclasses.replace(
        engine or EngineConfig(), backend=gen.backend, revision=revision,
        batch_size=gen.batch_size, cache=None,
    )  # fmt: skip
    spec = EngineSpec(gen.backend, model, revision, config)
    sampling = Sampling(gen.temperature, gen.top_p, gen.max_tokens, load_prompts().stop)
    cache = CompletionCache(Path(cache_dir).expanduser() / "llm-cache.sqlite")
    generator = Generator(spec, cache, label=f"generate {data.benchmark}", resources=resources)
    try:
        completions, counts = generator.generate(
            [PromptSpec(p, gen.n_samples, gen.seed) for p in prompts], sampling
        )
    finally:
        generator.close()  # the cache, and the engine it opened
    log.info("%s: %d samples (%d cached, %d generated)", data.benchmark, counts.hits + counts.misses,
             counts.hits, counts.misses)  # fmt: skip
    samples, extras = [], []
    for task_id, prompt, outputs in zip(task_ids, prompts, completions):
        for index, completion in enumerate(outputs):
            code = completion_code(completion.text)
            # EvalPlus grades prompt + completion; DS-1000 inserts the completion in its harness
            prefix = (
                data.problems[task_id]["prompt"] if data.benchmark in EVALPLUS_BENCHMARKS else ""
            )
            samples.append(Sample(task_id, index, prefix + code))
            extras.append({"prompt": prompt, "completion": code,
                           "finish_reason": completion.finish_reason})  # fmt: skip
    return samples, extras
