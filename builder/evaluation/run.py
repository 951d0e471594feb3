"""What `builder eval` does: grade a samples file, or generate with a model, then grade."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

from builder.engines.base import Sampling
from builder.engines.cache import CompletionCache
from builder.engines.config import EngineConfig
from builder.engines.generator import EngineSpec, Generator, PromptSpec
from builder.engines.model import chat_tokenizer
from builder.errors import BuilderError
from builder.evaluation.benchmarks import BENCHMARKS, GradingSetup, Selection, benchmark_name
from builder.evaluation.evalplus_grader import Sample
from builder.evaluation.prompts import CHAT, completion_code, load_prompts
from builder.evaluation.samples import read_samples

log = logging.getLogger(__name__)


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


def load_benchmark(name: str, data_file: str | None, selection: Selection = Selection()):
    return BENCHMARKS[benchmark_name(name)].load(data_file, selection)


def grade_any(data, samples: list[Sample], setup: GradingSetup, extras=None):
    return BENCHMARKS[data.benchmark].grade(data, samples, setup, extras)


def grade_samples_file(path: str, benchmark: str, data_file: str | None, setup: GradingSetup,
                       selection: Selection = Selection()):  # fmt: skip

    data = load_benchmark(benchmark, data_file, selection)
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
        data = load_benchmark(name, data_file, selection)
        task_ids = list(data.problems)[:limit] if limit else list(data.problems)
        samples, extras = generate_samples(
            model, revision, data, task_ids, gen, setup.cache_dir, engine, resources
        )
        results.append(grade_any(data, samples, setup, extras))
    return results


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
    benchmark = BENCHMARKS[data.benchmark]
    prompts = [benchmark.prompt(data, data.problems[t], gen.template, tokenizer) for t in task_ids]
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
            samples.append(Sample(task_id, index, benchmark.graded_text(data, task_id, code)))
            extras.append({"prompt": prompt, "completion": code,
                           "finish_reason": completion.finish_reason})  # fmt: skip
    return samples, extras
