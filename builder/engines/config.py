"""An engine's settings, as a recipe's `engine:` gives them (see `base.Engine`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from builder.config.fields import bounded


@dataclass
class EngineConfig:
    """How the generation stages run the model (see builder/engines/). Of these, only
    `revision` changes what is generated; the rest is how."""

    backend: str = "transformers"  # vllm | openai | transformers
    revision: str | None = None  # the model's Hub revision; None: its main, pinned at start
    cache: str | None = None  # SQLite file of every completion; None: <work_dir>/llm-cache.sqlite
    dtype: str = "auto"  # vllm, transformers
    max_model_len: int | None = bounded(None, ge=1)  # context length; None: the model's own
    batch_size: int = bounded(8, ge=1)  # transformers: sequences per generate() call
    cpu_threads: int | None = bounded(None, ge=1)  # on CPU (generation, training): torch threads
    tensor_parallel_size: int = bounded(1, ge=1)  # vllm
    # vllm: the share of GPU memory vLLM may use; None: vLLM's default on a GPU, and on vLLM's
    # CPU build (where it is a share of RAM) a KV cache of a quarter of the free RAM, <= 4 GiB
    gpu_memory_utilization: float | None = bounded(None, gt=0, le=1)
    # vllm: more `vllm.LLM` arguments, by vLLM's names (enforce_eager, max_num_seqs, ...)
    vllm_options: dict[str, Any] = field(default_factory=dict)
    base_url: str = "http://localhost:8000/v1"  # openai
    api_key_env: str = "OPENAI_API_KEY"  # openai: the variable holding the key (never the key)
    served_model_name: str | None = None  # openai: the server's name for the model; None: model
    max_concurrency: int = bounded(64, ge=1)  # openai: requests in flight
    max_retries: int = bounded(8, ge=0)  # openai: on 408, 409, 429, 5xx, timeouts (backoff)
    timeout_s: float = bounded(600.0, gt=0)  # openai: per request
