"""Generation throughput of an engine backend: prompts/s, samples/s, output tokens/s.

    python benchmarks/bench_generation.py --backend transformers [--model DIR] [--prompts 32]
    python benchmarks/bench_generation.py --backend vllm --model bigcode/starcoder2-15b \
        --prompts 2000 --n 10 --max-tokens 1536 --fewshots 1
    python benchmarks/bench_generation.py --backend openai --base-url http://localhost:8000/v1 \
        --model bigcode/starcoder2-15b

The prompts are real `responses` (or `concepts`) prompts built from the few-shot library, each
with its own few-shot draw, as the stages build them. The engine is called directly, all
prompts at once (as a stage hands it a chunk), after a short warm-up that is not timed. Then the
same prompts go through the completion cache twice (a cold pass that fills a temporary cache,
and a warm pass), to show what a rerun costs. The prefix-cache hit rate is printed when the
engine reports one (vLLM's own counters; an OpenAI server's `cached_tokens`). Without `--model`
a tiny random model is built on the spot (CPU; the figures then say nothing about a real one).
"""

from __future__ import annotations

import argparse
import logging
import random
import tempfile
import time
from pathlib import Path

from builder.engines.base import Request, Sampling, open_engine
from builder.engines.cache import CompletionCache
from builder.engines.generator import EngineSpec, Generator, PromptSpec
from builder.pipeline.recipe import EngineConfig
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


def time_cache(spec: EngineSpec, prompts: list[str], sampling: Sampling, n: int, folder: Path):
    specs = [PromptSpec(p, n, seed=5000 + i) for i, p in enumerate(prompts)]
    timings = []
    for _ in range(2):  # cold (generates and stores), then warm (all hits)
        generator = Generator(spec, CompletionCache(folder / "cache.sqlite"), label="bench")
        started = time.perf_counter()
        _, counts = generator.generate(specs, sampling)
        timings.append((time.perf_counter() - started, counts))
        generator.close()  # its cache and engine
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backend", default="transformers", choices=("transformers", "openai", "vllm")
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

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            from builder.engines.tiny_model import build_tiny_model

            model = str(build_tiny_model(Path(tmp) / "tiny-model"))
        config = EngineConfig(
            backend=args.backend,
            batch_size=args.batch_size,
            cpu_threads=args.cpu_threads,
            base_url=args.base_url,
            max_concurrency=args.concurrency,
            tensor_parallel_size=args.tensor_parallel_size,
        )
        sampling = Sampling(args.temperature, 1.0, args.max_tokens, STOP)
        prompts = build_prompts(args.task, args.prompts, args.fewshots)
        started = time.perf_counter()
        engine = open_engine(args.backend, model, None, config)
        load_s = time.perf_counter() - started
        time_engine(engine, build_prompts(args.task, 2, args.fewshots), sampling, 1)  # warm-up
        engine.metrics.__init__()  # count the timed run only
        elapsed, out_tokens, failed = time_engine(engine, prompts, sampling, args.n)
        metrics = engine.refresh_metrics()
        engine.close()
        rate = metrics.prefix_cache_hit_rate()

        print(
            f"backend {args.backend}, model {model if args.model else 'tiny random (built here)'}"
        )
        print(
            f"task {args.task}: {len(prompts)} prompts x n={args.n}, {args.fewshots} few-shot, "
            f"max_tokens {args.max_tokens}, T={args.temperature}; "
            f"{metrics.prompt_tokens / len(prompts):.0f} prompt tokens per prompt; "
            f"load {load_s:.1f} s; "
            f"{failed} samples failed (not counted as output)"
        )
        header = ("seconds", "prompts/s", "samples/s", "out tok/s", "prefix hit")
        print(" ".join(f"{h:>{w}}" for h, w in zip(header, (8, 10, 10, 10, 11))))
        print(
            f"{elapsed:>8.2f} {len(prompts) / elapsed:>10.2f} "
            f"{len(prompts) * args.n / elapsed:>10.2f} "
            f"{out_tokens / elapsed:>10.1f} {'-' if rate is None else f'{rate:.1%}':>11}"
        )

        spec = EngineSpec(args.backend, model, None, config)
        (cold_s, cold), (warm_s, warm) = time_cache(spec, prompts, sampling, args.n, Path(tmp))
        print(
            f"through the cache: cold {cold_s:.2f} s ({cold.misses} asked, {cold.stored} stored), "
            f"warm {warm_s:.3f} s ({warm.hits} hits, {warm.misses} asked again: failed requests "
            f"are not cached; {len(prompts) / warm_s:.0f} prompts/s)"
        )


if __name__ == "__main__":
    main()
