"""The executor interface: where a row stage's chunks run.

The driver (`rows.process_chunks`) cuts the input into chunk descriptors (`ChunkTask`: which
input rows, and light references to them such as file paths; never the rows themselves) and
hands them to an executor with a `RowJob`: the stage, its pinned input, and the checkpoint
folder. A `Worker` wherever the executor runs it loads each chunk's rows from the input,
processes them and writes the results and the chunk's completion marker into the checkpoint
folder (atomically, marker last; see `checkpoint.py`). The driver learns that a chunk is done
from the executor and reads its results back from that folder, so a worker needs nothing from
the driver but the job and its descriptors: a path every node can reach is all they share.

A worker owns the heavy resources of its stage (an engine, a Pyright server, a sandbox pool)
for its lifetime, in its `WorkerResources`, and closes them when it ends. Executors are a
runtime choice: they never change a fingerprint or what a stage publishes.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from builder.pipeline.checkpoint import Checkpoint
from builder.pipeline.chunk_data import ChunkProcessor, ChunkTask
from builder.pipeline.executors.config import ExecutorConfig
from builder.pipeline.input_sources import InputSource
from builder.pipeline.resources import Resources, WorkerResources

log = logging.getLogger(__name__)


@dataclass
class RowJob:
    """Everything a worker needs to process chunks of one stage (picklable)."""

    stage: ChunkProcessor  # a rows.RowStage
    source: InputSource  # `load(task)` gives the chunk's rows
    checkpoint: Path  # the stage's checkpoint folder


OnDone = Callable[[ChunkTask], None]


class Worker:
    """Processes chunks of one job; lives as long as its process, actor or thread does."""

    def __init__(self, job: RowJob, resources: WorkerResources):
        self.stage = job.stage
        self.source = job.source
        self.checkpoint = Checkpoint(job.checkpoint)
        self.stage.attach(resources)

    def run(self, task: ChunkTask) -> None:
        rows = self.source.load(task)
        result = self.stage.process(rows)
        where = f"{socket.gethostname()}:{os.getpid()}"  # in the proof: where a chunk ran
        self.checkpoint.save(task.index, result, rows_in=len(rows), worker=where)

    def close(self) -> None:
        self.stage.close()


class Executor(abc.ABC):
    """Runs a job's chunks; `on_done(task)` is called in the driver as each one is checkpointed.
    A chunk whose processing fails raises here (after the executor's own retries, if any);
    chunks finished before that keep their checkpoints."""

    name: str = ""

    def __init__(self, config: ExecutorConfig | None = None):
        self.config = config or ExecutorConfig(backend=self.name or "local")

    @abc.abstractmethod
    def run(self, job: RowJob, tasks: Iterable[ChunkTask], on_done: OnDone) -> None: ...

    def resources_for(self, stage: ChunkProcessor) -> Resources:
        """The stage's resources, with the recipe's overrides (`executor.resources.<stage>`)."""
        resources = stage.resources()
        override = self.config.resources.get(stage.name)
        if override is None:
            return resources
        changes = {
            name: getattr(override, name)
            for name in ("workers", "cpus", "gpus", "memory_mb")
            if getattr(override, name) is not None
        }
        if "workers" in changes:  # the recipe's count is also the most a cluster starts
            changes["max_workers"] = changes["workers"]
        return dataclasses.replace(resources, **changes)

    def close(self) -> None:
        """Release workers and what they hold (called once, at the end of a run)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
