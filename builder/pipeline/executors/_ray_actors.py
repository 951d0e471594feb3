"""The Ray executor's actors: chunk workers, and the objects that stay on the driver's machine.

A `ChunkWorker` is one worker of the executor (see `base.Worker`): it keeps its
`WorkerResources` (an engine replica, a Pyright server, a sandbox pool) for its whole life, across
the stages of a run that ask for the same resources, and processes the chunk descriptors it is
sent. It starts in the driver's working directory when its machine has that directory (a
shared filesystem mounted at the same path), so relative paths in a recipe mean the same thing
on every node.

`DriverObjects` holds the objects that only one machine may open: the completion cache and the
verdict cache are SQLite files in WAL mode, which needs memory shared by every reader and
writer and so cannot be shared over a network filesystem. It runs on the driver's node, and
workers anywhere reach the one instance through `RemoteObject`, which has the same methods.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray

from builder.errors import StageError
from builder.pipeline.chunk_data import ChunkTask
from builder.pipeline.executors.base import RowJob, Worker
from builder.pipeline.resources import WorkerResources


@ray.remote(max_restarts=0, max_task_retries=0)
class ChunkWorker:
    def __init__(self, cwd: str, cpus: int, objects: Any) -> None:
        if os.path.isdir(cwd):
            os.chdir(cwd)

        def on_driver(factory: Callable[[str], Any], path: str) -> RemoteObject:
            return RemoteObject(objects, factory, path)

        self.resources = WorkerResources(cpus=cpus, on_driver=on_driver)
        self.worker: Worker | None = None

    def begin(self, job: RowJob) -> dict[str, Any]:
        """Start working for one stage; returns where this worker runs."""
        self.end()
        if not Path(job.checkpoint).is_dir():
            raise StageError(
                f"the work folder {job.checkpoint} does not exist on node {socket.gethostname()}: "
                "work_dir must be on storage every node of the cluster reaches at the same path"
            )
        self.worker = Worker(job, self.resources)
        return {
            "node": ray.get_runtime_context().get_node_id(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
        }

    def run(self, task: ChunkTask) -> int:
        assert self.worker is not None, "begin() first"
        self.worker.run(task)
        return task.index

    def end(self) -> None:
        """The stage is over: release what only it needed (shared resources stay)."""
        if self.worker is not None:
            try:
                self.worker.close()
            finally:
                self.worker = None
                self.resources.end_step()

    def close(self) -> None:
        try:
            self.end()
        finally:
            self.resources.close()


@ray.remote(num_cpus=0, max_restarts=0)
class DriverObjects:
    """One instance of each (factory, path) object, called by workers on any node."""

    def __init__(self, cwd: str) -> None:
        os.chdir(cwd)  # on the driver's node: relative paths are the driver's
        self.objects: dict[tuple[str, str], Any] = {}

    def call(self, factory: Callable[[str], Any], path: str, method: str, args, kwargs) -> Any:
        key = (f"{factory.__module__}.{factory.__qualname__}", path)
        if key not in self.objects:
            self.objects[key] = factory(path)
        return getattr(self.objects[key], method)(*args, **kwargs)

    def close(self) -> None:
        for thing in self.objects.values():
            thing.close()
        self.objects.clear()


class RemoteObject:
    """`factory(path)` as it lives in `DriverObjects`: each method call is a call to it, which
    returns once the driver's machine has done it (a cache's write is durable there before the
    worker moves on). `close` does nothing: the executor closes the instance at the end."""

    def __init__(self, objects: Any, factory: Callable[[str], Any], path: str) -> None:
        self._objects, self._factory, self._path = objects, factory, path

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method.startswith("_"):
            raise AttributeError(method)

        def call(*args, **kwargs):
            ref = self._objects.call.remote(self._factory, self._path, method, args, kwargs)
            return ray.get(ref)

        return call

    def close(self) -> None:
        pass
