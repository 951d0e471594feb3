"""An executor's settings, as a recipe's `executor:` gives them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from builder.config.fields import bounded


@dataclass
class WorkerResourcesConfig:
    """A step's resources as the recipe overrides them (`executor.resources.<step>`); unset keys
    keep the step's own (see `builder.pipeline.step.Resources`)."""

    workers: int | None = bounded(None, ge=1)  # local: processes; a cluster: the most started
    cpus: float | None = bounded(None, ge=0)  # per worker
    gpus: float | None = bounded(None, ge=0)  # per worker: e.g. vLLM's tensor_parallel_size
    memory_mb: int | None = bounded(None, ge=1)  # per worker


@dataclass
class ExecutorConfig:
    """Where row stages' chunks run (see builder/pipeline/executors/). A runtime choice: it
    changes no fingerprint and no published row."""

    backend: str = "local"  # local | ray
    # ray: a running cluster ("auto": the one started on this machine; "HOST:PORT": its head;
    # "ray://HOST:10001": through Ray Client); None: start one on this machine for the run.
    address: str | None = None
    max_retries: int = bounded(3, ge=0)  # ray: reruns of a chunk whose worker or node died
    start_timeout_s: float = bounded(600.0, gt=0)  # ray: how long a stage waits for a worker
    runtime_env: dict[str, Any] = field(default_factory=dict)  # ray: Ray's own runtime_env
    resources: dict[str, WorkerResourcesConfig] = field(default_factory=dict)  # per step
