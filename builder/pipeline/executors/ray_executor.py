"""The Ray executor: a row stage's chunks on the workers of a Ray cluster.

`executor.backend: ray` in a recipe; `executor.address` names a running cluster (or None: one
is started on this machine for the run). Each worker is a Ray actor (`_ray_actors.ChunkWorker`)
placed by the step's resources (`cpus`, `gpus`, `memory_mb`, see `step.Resources`, overridden
by `executor.resources.<step>`); a stage gets as many as the nodes alive when it starts have
room for (at most `max_workers`; at least one, which waits for an autoscaler to add a node that
can hold it), spread over the nodes. Actors receive chunk descriptors, never rows: each loads
its rows from the input, processes them and checkpoints the chunk in the work folder, which must
be on storage every node reaches at the same path. Each actor has at most two chunks at a time,
so the chunks go to whichever replica is free; the driver publishes once every chunk is
checkpointed, as with the local executor. The actors of a stage stay for the next stage that asks
for the same resources, with what they hold (the generation stages load their model once per
replica, not once per stage).

Failures. A chunk whose actor dies (its process killed, its node lost) goes back to the queue and
runs on another actor, at most `executor.max_retries` more times, and a replacement actor is
started (it waits for room if the cluster has none); a chunk the lost actor had checkpointed
before its answer was lost is kept. An error raised by the stage's own code is not retried: the
other chunks still run (and are kept), then the stage fails naming every chunk that failed, its
rows and why. A rerun redoes only the chunks without a completion proof. Chunks in flight on a
lost node are redone from their start; completions and verdicts they had stored are not
requested again (the caches live on the driver's machine, see `_ray_actors.DriverObjects`).

Not covered: work folders on object stores (s3://; it needs a shared path), a driver that runs
through Ray Client with a work folder that only the driver sees, a node that pauses without
dying (after Ray declares it lost, its actor may still finish a chunk that another has redone:
both write the same rows, and the last rename wins), tensor-parallel groups spanning nodes.
"""

from __future__ import annotations

import logging
import math
import os
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import RayError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from builder.errors import StageError
from builder.pipeline.executors._ray_actors import ChunkWorker, DriverObjects
from builder.pipeline.executors._ray_stage import Replica, StageRun, describe_nodes, first_line
from builder.pipeline.executors.base import ChunkTask, Executor, OnDone, RowJob
from builder.pipeline.executors.config import ExecutorConfig
from builder.pipeline.resources import Resources

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Shape:
    """What one actor asks the cluster for."""

    cpus: float
    gpus: float
    memory_mb: int | None

    @classmethod
    def of(cls, resources: Resources) -> Shape:
        return cls(resources.cpus, resources.gpus, resources.memory_mb)

    def options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"num_cpus": self.cpus, "num_gpus": self.gpus}
        if self.memory_mb:
            options["memory"] = self.memory_mb * 2**20
        return options

    def fits(self, node: dict[str, float]) -> int:
        """How many such actors one node holds (its totals)."""
        counts = [math.floor(node.get("CPU", 0) / self.cpus + 1e-9) if self.cpus else math.inf]
        if self.gpus:
            counts.append(math.floor(node.get("GPU", 0) / self.gpus + 1e-9))
        if self.memory_mb:
            counts.append(math.floor(node.get("memory", 0) / (self.memory_mb * 2**20)))
        return min(counts)

    def __str__(self) -> str:
        memory = f", {self.memory_mb} MB" if self.memory_mb else ""
        return f"{self.cpus:g} CPU, {self.gpus:g} GPU{memory}"


class RayExecutor(Executor):
    name = "ray"

    def __init__(self, config: ExecutorConfig | None = None):
        super().__init__(config or ExecutorConfig(backend="ray"))
        self._connected = False
        self._owns_connection = False  # False when Ray was initialised before (a notebook)
        self._objects = None  # DriverObjects
        self._shape: Shape | None = None
        self.replicas: list[Replica] = []

    def run(self, job: RowJob, tasks: Iterable[ChunkTask], on_done: OnDone) -> None:
        self._connect()
        resources = self.resources_for(job.stage)
        shape = Shape.of(resources)
        if shape != self._shape:  # other resources: free the cluster for this stage's actors
            self._stop_replicas()
            self._shape = shape
        nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
        room = sum(shape.fits(n) for n in nodes)
        if room == 0:  # an autoscaler may add a node that can: one worker waits for it
            log.warning(
                "%s: no node of the cluster (%s) can hold a worker of %s; waiting up to %g s "
                "for one (or lower executor.resources.%s)",
                job.stage.name, describe_nodes(nodes), shape, self.config.start_timeout_s,
                job.stage.name,
            )  # fmt: skip
        limit = min(max(room, 1), resources.max_workers or max(room, 1))
        try:
            StageRun(self, job, limit).run(tasks, on_done)
        except BaseException:
            self._stop_replicas()  # nothing of a failed stage keeps running
            raise

    def new_replica(self) -> Replica:
        cpus = max(1, math.floor(self._shape.cpus)) if self._shape else 1
        handle = ChunkWorker.options(scheduling_strategy="SPREAD", **self._shape.options()).remote(
            os.getcwd(), cpus, self._objects
        )
        replica = Replica(handle)
        self.replicas.append(replica)
        return replica

    def drop(self, replica: Replica) -> None:
        if replica in self.replicas:
            self.replicas.remove(replica)
        ray.kill(replica.handle, no_restart=True)

    def close(self) -> None:
        if not self._connected:
            return
        try:
            self._stop_replicas()
            if self._objects is not None:
                _quietly(lambda: ray.get(self._objects.close.remote(), timeout=60))
                ray.kill(self._objects, no_restart=True)
        finally:
            if self._owns_connection:
                ray.shutdown()  # and a cluster started for the run stops with it
            self._connected = False

    def _connect(self) -> None:
        if self._connected:
            return
        runtime_env = dict(self.config.runtime_env)
        # Workers' progress bars would interleave in the driver's output: the driver has its own.
        runtime_env["env_vars"] = {"TQDM_DISABLE": "1", **runtime_env.get("env_vars", {})}
        options: dict[str, Any] = {"runtime_env": runtime_env, "logging_level": logging.WARNING}
        if self.config.address is None:
            options["include_dashboard"] = False
        where = self.config.address or "a new cluster on this machine"
        if ray.is_initialized():
            where = "the cluster this process is connected to"
        else:
            try:
                # "local": a new cluster, even when one started with `ray start` runs here.
                ray.init(address=self.config.address or "local", **options)
            except (ConnectionError, RayError, ValueError, RuntimeError) as err:
                raise StageError(
                    f"cannot connect to the Ray cluster at {where}: {first_line(err)} (to a "
                    "cluster with token authentication, a driver connects with "
                    "RAY_AUTH_MODE=token and the cluster's token in RAY_AUTH_TOKEN_PATH, "
                    "RAY_AUTH_TOKEN or ~/.ray/auth_token)"
                ) from None
            self._owns_connection = True
        self._connected = True
        nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
        log.info("ray: connected to %s: %s", where, describe_nodes(nodes))
        node = ray.get_runtime_context().get_node_id()
        strategy = NodeAffinitySchedulingStrategy(node, soft=False)
        self._objects = DriverObjects.options(scheduling_strategy=strategy).remote(os.getcwd())

    def _stop_replicas(self) -> None:
        replicas, self.replicas = self.replicas, []
        closing = [r.handle.close.remote() for r in replicas if r.begun is None]
        if closing:  # let them close what they hold (an engine, a sandbox pool), then kill
            _quietly(lambda: ray.wait(closing, num_returns=len(closing), timeout=60))
        for replica in replicas:
            ray.kill(replica.handle, no_restart=True)
        self._shape = None


def _quietly(action) -> None:
    try:
        action()
    except Exception:  # noqa: BLE001  # closing on the way out: report, never mask the cause
        log.debug("ray: %s", traceback.format_exc())
