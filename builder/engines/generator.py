"""Prompts in, completions out, through the cache: what the generation stages call.

For each prompt the generator looks up which of its samples the cache already has, asks the
engine for the others only (as few requests as possible: one per run of consecutive missing
sample indices, normally one), and stores each request's samples the moment it finishes.
The engine is opened on the first miss, so a rerun that finds everything cached never loads the
model. Given a worker's resources (`builder.pipeline.step.WorkerResources`), the engine is kept
there, shared by the stages of a run (loading a 15B model once, not four times) and closed with
the worker; without them, the generator owns its engine and `close()` frees it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tqdm.auto import tqdm

from builder.engines.base import Completion, Engine, Request, Sampling, open_engine
from builder.engines.cache import CacheCounts, CompletionCache, request_key
from builder.engines.config import EngineConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PromptSpec:
    """One prompt and how many samples of it a stage wants (seed: that of sample 0)."""

    prompt: str
    n: int
    seed: int


@dataclass(frozen=True)
class EngineSpec:
    backend: str
    model: str
    revision: str | None
    config: EngineConfig

    def key(self) -> str:
        return repr((self.backend, self.model, self.revision, self.config))


class Generator:
    def __init__(
        self,
        engine: EngineSpec,
        cache: CompletionCache,
        label: str = "generate",
        resources=None,  # WorkerResources: where a worker keeps its engine
    ):
        self.engine_spec = engine
        self.cache = cache
        self.label = label
        self.resources = resources
        self._own_engine: Engine | None = None

    def engine(self) -> Engine:
        """The engine for the spec, opened now if needed (a worker's, or the generator's own)."""
        spec = self.engine_spec

        def open_it() -> Engine:
            log.info("opening %s engine for %s", spec.backend, spec.model)
            return open_engine(spec.backend, spec.model, spec.revision, spec.config)

        if self.resources is not None:
            return self.resources.get(("engine", spec.key()), open_it, group="engine", shared=True)
        if self._own_engine is None:
            self._own_engine = open_it()
        return self._own_engine

    def close(self) -> None:
        """Close the cache, and the engine if the generator owns it."""
        if self._own_engine is not None:
            self._own_engine.close()
            self._own_engine = None
        self.cache.close()

    def generate(
        self, prompts: list[PromptSpec], sampling: Sampling
    ) -> tuple[list[list[Completion]], CacheCounts]:
        """The n completions of every prompt, in sample order, and the cache's counts."""
        counts = CacheCounts()
        results: list[list[Completion | None]] = [[None] * p.n for p in prompts]
        requests: list[Request] = []
        owners: list[tuple[int, str]] = []  # request -> (prompt index, cache key)
        spec = self.engine_spec
        keys = [request_key(spec.model, spec.revision, p.prompt, sampling, p.seed) for p in prompts]
        found = self.cache.get_many([(key, p.n) for key, p in zip(keys, prompts)])
        for i, (p, key, cached) in enumerate(zip(prompts, keys, found)):
            for index, completion in cached.items():
                results[i][index] = completion
            counts.hits += len(cached)
            for first, count in _missing_runs(p.n, cached.keys()):
                requests.append(Request(p.prompt, sampling, p.seed, count, first))
                owners.append((i, key))
                counts.misses += count
        if requests:
            self._run(requests, owners, results, counts)
        return results, counts  # type: ignore[return-value]  # every slot is filled

    def _run(self, requests, owners, results, counts: CacheCounts) -> None:
        engine = self.engine()
        model = self.engine_spec.model
        total = sum(r.n for r in requests)
        bar = tqdm(
            total=total,
            desc=self.label,
            unit="sample",
            dynamic_ncols=True,
            mininterval=1.0,
            leave=False,
        )

        def on_done(request_index: int, completions: list[Completion]) -> None:
            request = requests[request_index]
            prompt_index, key = owners[request_index]
            samples = dict(zip(request.indices, completions))
            counts.stored += self.cache.put(key, samples, model)
            for index, completion in samples.items():
                results[prompt_index][index] = completion
            bar.update(len(completions))

        try:
            engine.generate(requests, on_done)
        finally:
            bar.close()
        missing = sum(slot is None for row in results for slot in row)
        if missing:  # a backend bug, not a model failure: never publish holes
            raise RuntimeError(
                f"engine {engine.backend} returned no completion for {missing} samples"
            )


def _missing_runs(n: int, present) -> list[tuple[int, int]]:
    """(first index, count) of each run of consecutive sample indices in 0..n-1 not present."""
    runs: list[tuple[int, int]] = []
    for index in range(n):
        if index in present:
            continue
        if runs and runs[-1][0] + runs[-1][1] == index:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((index, 1))
    return runs
