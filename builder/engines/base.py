"""One interface for every way of prompting a model: requests in, completions out.

A `Request` asks for samples `first_index .. first_index + n - 1` of one prompt. Sample `i` is
drawn with seed `seed + i`: vLLM gives the children of an `n > 1` request exactly these seeds,
so a request for samples 0..9 and ten requests for one sample each mean the same thing, and a
rerun can ask for just the samples it is missing. (Other backends honour the seed as well as
they can; see each backend.) Completions end before the first stop string, whatever the
backend, and say why they ended: `stop` (a stop string or end of text), `length` (max_tokens or
the context was reached) or `error` (the request failed; `error` says how, `error_kind` is a
short key such as `prompt_too_long`).

Backends are imported by name, only when opened, so the CLI never imports torch or vllm.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from builder.engines.config import EngineConfig
from builder.registry import ENGINES

# The backend name in a recipe's `engine.backend` -> "module:Class" (one registry for all).
BACKENDS = ENGINES.entries


@dataclass(frozen=True)
class Sampling:
    """Engine-independent sampling parameters (all that goes into the cache key but the seed)."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 512
    stop: tuple[str, ...] = ()
    # The log-probabilities of the `logprobs` likeliest first tokens, with each completion
    # (`Completion.first_logprobs`; 0: none). What a scoring judge reads.
    logprobs: int = 0

    def as_dict(self) -> dict[str, Any]:
        data = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "stop": list(self.stop),
        }
        if self.logprobs:  # absent otherwise: earlier cache keys stay the same
            data["logprobs"] = self.logprobs
        return data


@dataclass(frozen=True)
class Request:
    prompt: str
    sampling: Sampling
    seed: int  # the seed of sample 0; sample i uses seed + i
    n: int = 1
    first_index: int = 0

    def sample_seed(self, index: int) -> int:
        return self.seed + index

    @property
    def indices(self) -> range:
        return range(self.first_index, self.first_index + self.n)


@dataclass
class Completion:
    text: str
    finish_reason: str  # stop | length | error
    output_tokens: int = 0
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0  # prompt tokens served from a prefix cache, when reported
    error: str = ""
    error_kind: str = ""  # for finish_reason == "error": e.g. prompt_too_long, request_failed
    # token text -> log-probability, for the likeliest first tokens (Sampling.logprobs > 0)
    first_logprobs: dict[str, float] | None = None

    @property
    def ok(self) -> bool:
        return self.finish_reason != "error"


def error_completion(kind: str, message: str) -> Completion:
    return Completion("", "error", error=message[:500], error_kind=kind)


# How engines and servers (vLLM's, OpenAI's, TGI's) word a prompt longer than the context.
_TOO_LONG_HINTS = ("context length", "maximum context", "too long", "max_model_len", "longer than")


def refused(message: str) -> Completion:
    """The completion of a request the engine or server refused: `prompt_too_long` when its
    message says the prompt does not fit the model's context, else `request_failed`."""
    too_long = any(hint in message.lower() for hint in _TOO_LONG_HINTS)
    return error_completion("prompt_too_long" if too_long else "request_failed", message)


# Called once per request as soon as all of its samples are done (in any order):
# (index of the request in the list given to `generate`, its n completions in sample order).
OnDone = Callable[[int, list[Completion]], None]


@dataclass
class EngineMetrics:
    """What an engine can say about its own work, for benchmarks and cards."""

    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    output_tokens: int = 0
    extra: dict[str, float] = field(default_factory=dict)

    def prefix_cache_hit_rate(self) -> float | None:
        if "prefix_cache_hit_rate" in self.extra:
            return self.extra["prefix_cache_hit_rate"]
        if self.cached_prompt_tokens and self.prompt_tokens:
            return self.cached_prompt_tokens / self.prompt_tokens
        return None


class Engine:
    """Generates completions; subclasses implement `_generate` for one backend."""

    backend: str = ""

    def __init__(self, model: str, revision: str | None, config: EngineConfig) -> None:
        self.model = model
        self.revision = revision
        self.config = config
        self.metrics = EngineMetrics()

    @classmethod
    def worker_needs(cls, config: EngineConfig) -> dict[str, Any]:
        """What a worker holding this engine needs, as `pipeline.resources.Resources` fields
        (`gpus`, `max_workers`, ...); asked before any engine is built, so it never loads the
        backend's library. Default: nothing beyond a worker (a model on the worker's CPU, or
        the GPUs the recipe gives it)."""
        return {}

    def generate(self, requests: Sequence[Request], on_done: OnDone) -> None:
        """Generate every request, calling `on_done` as each one finishes.

        All requests are handed to the backend at once, so that it can batch them. A request
        that fails gets `error` completions; only a failure of the whole engine raises.
        """
        if requests:
            self._generate(list(requests), on_done)

    def _generate(self, requests: list[Request], on_done: OnDone) -> None:
        raise NotImplementedError

    def refresh_metrics(self) -> EngineMetrics:
        """The engine's counters so far (backends that keep their own update them here)."""
        return self.metrics

    def close(self) -> None:
        """Free the model and its memory."""

    def _count(self, completions: list[Completion]) -> None:
        for completion in completions:
            self.metrics.output_tokens += completion.output_tokens
        if completions:  # the prompt is processed once per request, however many samples
            self.metrics.prompt_tokens += completions[0].prompt_tokens
            self.metrics.cached_prompt_tokens += completions[0].cached_prompt_tokens


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """The text before the first stop string, and whether one was found.

    vLLM and OpenAI servers already leave the stop string out; `transformers` keeps it, and some
    servers do too. Cutting again is harmless, so every backend's text goes through here.
    """
    cut = min((i for s in stop if s and (i := text.find(s)) >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def open_engine(backend: str, model: str, revision: str | None, config: EngineConfig) -> Engine:
    """A new engine of `backend` for `model` (its module is imported only now)."""
    return ENGINES.create(backend, model, revision, config)
