"""The base of the stages that prompt the model: judge, concepts, instructions, responses.

Such a stage needs, besides its own keys, the recipe's model, engine settings and work_dir
(its `StepContext`). The model is pinned to a revision when the stage is planned (see
`builder.engines.model`; a model that does not exist fails there, before any work), and
`fingerprint_extra()` puts the model, its revision and a digest of the prompt files into the
fingerprint. The engine backend is not in it: any backend draws from the same model with the
same parameters (see `builder.engines.cache`).

Locally, chunks run one after another in the runner's process (one worker): the engine does
the batching, across all the prompts of a chunk, and the cache keeps each completion as it
arrives, so a crash inside a chunk costs only the requests in flight. On a cluster, each worker
holds one engine replica (`resources()`: vLLM's tensor-parallel group of GPUs) and the chunks
are spread over all replicas; the cache stays one file on the driver's machine
(`WorkerResources.open_on_driver`), so no replica asks for a completion another has stored.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from builder.engines.base import BACKENDS, Sampling
from builder.engines.cache import CompletionCache
from builder.engines.config import EngineConfig
from builder.engines.generator import EngineSpec, Generator
from builder.engines.model import chat_tokenizer, public_name, resolve_model
from builder.errors import StageError
from builder.pipeline.resources import Resources
from builder.pipeline.rows import RowStage
from builder.registry import ENGINES
from builder.stages.generation.library import library_digest
from builder.stages.generation.params import GenerationParams
from builder.stages.generation.parse import repetitive
from builder.stages.generation.prompting import render_chat


@dataclass(frozen=True)
class GenerationSetup:
    model: str  # what the engine loads: a Hub id or a folder
    revision: str
    engine: EngineConfig
    cache_path: str
    display: str = ""  # how cards name the model (a GGUF file by its own name)
    source: dict | None = None  # a GGUF file's lineage (engines.model.ModelRef.source)


class GenerationStage(RowStage):
    params_class = GenerationParams
    # Rows per checkpoint, all handed to the engine at once: large, so that vLLM batches well
    # (the published run sent 4,096 requests at a time); the cache covers a chunk's work.
    chunk_size = 2048
    stop: ClassVar[tuple[str, ...]] = ()
    single_sample: ClassVar[bool] = True  # one output per row: n must be 1

    params: GenerationParams

    def fingerprint_extra(self) -> dict[str, Any]:
        setup = self._setup()
        extra = {
            "model": setup.display,
            "model_revision": setup.revision,
            "prompts": library_digest(),
            "prompting": self.context.prompting,
        }
        if setup.source is not None:
            extra["model_source"] = setup.source
        return extra

    @property
    def chat(self) -> bool:
        """Prompt through the tokenizer's chat template (recipe `prompting: chat`)."""
        return self.context.prompting == "chat"

    def render(self, prompt) -> str:
        """A prompt as the text the engine continues: completion text as it is; chat messages
        through the model's own chat template."""
        if isinstance(prompt, str):
            return prompt
        return render_chat(self._tokenizer(), prompt)

    def _tokenizer(self):
        tokenizer = self.__dict__.get("_tokenizer_instance")
        if tokenizer is None:
            tokenizer = chat_tokenizer(self._setup().model, self._setup().revision)
            self.__dict__["_tokenizer_instance"] = tokenizer
        return tokenizer

    def resources(self) -> Resources:
        """One engine per worker. vLLM's holds `tensor_parallel_size` GPUs (none on vLLM's CPU
        build); transformers' runs on the CPU unless the recipe gives its workers a GPU
        (`executor.resources.<stage>.gpus`); a client of an OpenAI-compatible server needs no
        more than one worker."""
        engine = self.context.engine
        return Resources(**ENGINES.load(engine.backend).worker_needs(engine))

    def sampling(self):
        p = self.params
        return Sampling(p.temperature, p.top_p, p.max_tokens, self.stop)

    def row_seed(self, key: str) -> int:
        """The row's seed (of its sample 0), from the stage's seed, name and the row's key."""
        text = f"{self.params.seed}\0{self.name}\0{key}"
        return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") >> 1

    def row_rng(self, key: str) -> random.Random:
        """The row's random source for few-shot draws and sampled properties."""
        return random.Random(self.row_seed(key))

    def generate(self, prompts: list) -> tuple[list[list], Counter]:
        """Completions for `PromptSpec`s, and the counts the card reports."""
        results, counts = self._generator().generate(prompts, self.sampling())
        stats = Counter(prompts=len(prompts), cache_hits=counts.hits, cache_misses=counts.misses)
        for completions in results:
            for completion in completions:
                stats["samples"] += 1
                stats[f"finish_{completion.finish_reason}"] += 1
                stats["output_tokens"] += completion.output_tokens
        return results, stats

    def failure(self, completion) -> tuple[str, str] | None:
        """(reason, detail) when a completion cannot be parsed at all: the request failed or
        the model was cut off by max_tokens."""
        if not completion.ok:
            return completion.error_kind or "engine_error", completion.error
        if completion.finish_reason == "length":
            if repetitive(completion.text):
                return "runaway_repetition", (
                    f"stopped at max_tokens ({self.params.max_tokens}) in a loop: "
                    f"...{completion.text[-80:]!r}"
                )
            return "truncated", f"stopped at max_tokens ({self.params.max_tokens}) before the end"
        return None

    def close(self) -> None:
        """Close the cache (a worker's engine stays open for the next stage of the run)."""
        generator = self.__dict__.pop("_generator_instance", None)
        if generator is not None:
            generator.close()
        self.__dict__.pop("_tokenizer_instance", None)
        super().close()

    def card_notes(self) -> str:
        setup = self._setup()
        p = self.params
        if self.chat:
            mode = (
                f"in chat mode: the model's own chat template, a system turn saying the task, "
                f"{p.num_fewshots} worked examples as earlier user/assistant turns (drawn per row "
                "from our own few-shot library with the row's seed), then the row's query. "
            )
        else:
            mode = (
                f"in completion mode: {p.num_fewshots} worked examples (`## Example k` blocks, "
                "drawn per row from our own few-shot library with the row's seed), then the "
                "row's query. "
            )
        origin = ""
        if setup.source is not None:
            origin = (
                f" (converted from the GGUF file `{setup.source['file']}`, sha256 "
                f"`{setup.source['sha256'][:16]}`, made from "
                f"`{setup.source.get('base_model') or 'an unnamed model'}`)"
            )
        setting = (
            f"Generated by `{setup.display}`{origin} at revision `{setup.revision}` with the "
            f"`{setup.engine.backend}` engine, {mode}"
            f"Sampling: n={p.n}, temperature={p.temperature}, top_p={p.top_p}, "
            f"max_tokens={p.max_tokens}, stop={list(self.stop)!r}, base seed {p.seed} (each row "
            "derives its own; sample i uses seed + i)."
        )
        counts = (
            "Counts: `prompts` and `samples` asked for; `cache_hits` were found in the completion "
            "cache (a rerun after a crash, or an earlier run with the same model, prompt and "
            "sampling) and `cache_misses` were generated; `finish_stop` / `finish_length` / "
            "`finish_error` say how completions ended. A completion cut off by max_tokens is "
            "dropped as `truncated` (`runaway_repetition` when its end is a loop); one that does "
            "not parse is dropped with the parser's reason. `repaired_*` count the small repairs "
            "that let a row parse. Dropped rows keep the model's raw text."
        )
        return f"{setting}\n\n{counts}\n\n{self.method_notes()}"

    def method_notes(self) -> str:
        return ""

    def _setup(self) -> GenerationSetup:
        """The pinned model and engine settings, worked out once; StageError if unusable."""
        setup = self.__dict__.get("_setup_instance")
        if setup is None:
            setup = self._make_setup()
            self.__dict__["_setup_instance"] = setup
        return setup

    def _make_setup(self) -> GenerationSetup:
        if self.single_sample and self.params.n != 1:
            raise StageError(f"stages.{self.name}.n must be 1 (one {self.name} output per row)")
        engine = self.context.engine
        if engine.backend not in BACKENDS:
            raise StageError(
                f"unknown engine.backend '{engine.backend}' (known: {', '.join(sorted(BACKENDS))})"
            )
        ref = resolve_model(
            self.context.model, engine.revision, self.context.work_dir, self.context.model_origin
        )
        cache = engine.cache or str(Path(self.context.work_dir) / "llm-cache.sqlite")
        display = public_name(self.context.model)
        if self.chat:  # fails here, before any work, when the model has no chat template
            self.__dict__["_tokenizer_instance"] = chat_tokenizer(ref.name, ref.revision)
        return GenerationSetup(ref.name, ref.revision, engine, cache, display, ref.source)

    def _generator(self):
        generator = self.__dict__.get("_generator_instance")
        if generator is None:
            setup = self._setup()
            spec = EngineSpec(setup.engine.backend, setup.model, setup.revision, setup.engine)
            cache = self.worker_resources.open_on_driver(CompletionCache, setup.cache_path)
            generator = Generator(spec, cache, label=self.name, resources=self.worker_resources)
            self.__dict__["_generator_instance"] = generator
        return generator

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state.pop("_generator_instance", None)  # a database connection does not travel
        state.pop("_tokenizer_instance", None)  # loaded again where it is needed
        return state


def completion_row(completion) -> dict[str, Any]:
    """The raw completion, kept in dropped rows so that failures can be read."""
    return {"completion": completion.text, "finish_reason": completion.finish_reason}
