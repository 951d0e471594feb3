"""How the Ray executor runs one stage's chunks on its replicas (see `ray_executor.py`): hand
them out (every replica one before any gets two), collect them, give the chunks of a lost
replica to the others a bounded number of times, and report the chunks that failed for good."""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import ray
from ray.exceptions import RayError, RayTaskError

from builder.errors import BuilderError, StageError
from builder.pipeline.checkpoint import Checkpoint
from builder.pipeline.chunk_data import ChunkTask
from builder.pipeline.executors.base import OnDone, RowJob
from builder.pipeline.executors.config import ExecutorConfig

log = logging.getLogger("builder.pipeline.executors.ray_executor")

IN_FLIGHT_PER_WORKER = 2  # one running, one waiting: a worker never idles between chunks


@dataclass(eq=False)
class Replica:
    handle: Any
    begun: Any = None  # the ref of its begin() for the current stage, until it answers
    where: dict[str, Any] = field(default_factory=dict)
    in_flight: dict[Any, tuple[ChunkTask, int]] = field(default_factory=dict)  # ref -> attempt


class ReplicaPool(Protocol):
    """What a stage run uses of the executor (`ray_executor.RayExecutor`): its settings and
    the replicas it keeps across stages."""

    config: ExecutorConfig
    replicas: list[Replica]
    _shape: Any

    def new_replica(self) -> Replica: ...

    def drop(self, replica: Replica) -> None: ...


class StageRun:
    """One stage's chunks on the executor's replicas: hand out, collect, retry, report."""

    def __init__(self, executor: ReplicaPool, job: RowJob, limit: int):
        self.executor, self.limit = executor, limit
        self.stage = job.stage.name
        self.config = executor.config
        self.job_ref = ray.put(job)
        self.checkpoint = Checkpoint(job.checkpoint)
        self.queue: deque[tuple[ChunkTask, int]] = deque()  # chunks to (re)run, with attempt
        self.failures: list[tuple[ChunkTask, str]] = []
        self.per_node: Counter = Counter()
        self.lost_workers = 0
        self.kept = self.started = 0  # workers kept from the previous stage, and started
        self.waiting_since = time.monotonic()

    def run(self, tasks: Iterable[ChunkTask], on_done: OnDone) -> None:
        source: Iterator[ChunkTask] | None = iter(tasks)
        self.kept = len(self.executor.replicas)
        for replica in self.executor.replicas:  # kept from the previous stage
            replica.begun = replica.handle.begin.remote(self.job_ref)
        while True:
            source = self._fill_queue(source)
            self._start_replicas(source is not None)
            self._hand_out()
            # Replicas still starting matter only while there is work for them.
            starting = bool(self.queue or source is not None)
            refs = self._refs(starting)
            if not refs:
                break
            done, _ = ray.wait(refs, num_returns=1, timeout=10.0)
            if not done:
                self._check_waiting()
            for ref in done:
                self._collect(ref, on_done)
        self._end_stage()
        if self.failures:
            raise StageError(_failure_report(self.stage, self.failures))

    def _fill_queue(self, source: Iterator[ChunkTask] | None) -> Iterator[ChunkTask] | None:
        """Keep enough chunks queued for every free slot; None once the input is exhausted."""
        wanted = IN_FLIGHT_PER_WORKER * max(self.limit, len(self.executor.replicas))
        while source is not None and len(self.queue) < wanted:
            task = next(source, None)
            if task is None:
                return None
            self.queue.append((task, 0))
        return source

    def _start_replicas(self, more_to_come: bool) -> None:
        # One replica per chunk still to run, up to the limit: chunks are the heavy part (a
        # replica's start is paid once per run, its actors being kept from stage to stage).
        busy = sum(len(r.in_flight) for r in self.executor.replicas)
        wanted = self.limit if more_to_come else min(self.limit, len(self.queue) + busy)
        while len(self.executor.replicas) < wanted:
            replica = self.executor.new_replica()
            replica.begun = replica.handle.begin.remote(self.job_ref)
            self.started += 1

    def _hand_out(self) -> None:
        """Every ready replica gets a chunk before any gets a second, and none gets a second
        while another is still starting: a stage of few chunks is spread over all replicas."""
        replicas = self.executor.replicas
        ready = [r for r in replicas if r.begun is None]
        depth = 1 if len(ready) < len(replicas) else IN_FLIGHT_PER_WORKER
        for level in range(1, depth + 1):
            for replica in ready:
                if self.queue and len(replica.in_flight) < level:
                    task, attempt = self.queue.popleft()
                    replica.in_flight[replica.handle.run.remote(task)] = (task, attempt)

    def _refs(self, starting: bool) -> list:
        refs = []
        for replica in self.executor.replicas:
            refs.extend(replica.in_flight)
            if starting and replica.begun is not None:
                refs.append(replica.begun)
        if not refs and starting:
            raise StageError(f"stage '{self.stage}': no worker is left to run its chunks")
        return refs

    def _collect(self, ref, on_done: OnDone) -> None:
        replica = next(r for r in self.executor.replicas if ref in r.in_flight or ref == r.begun)
        if ref == replica.begun:
            try:
                replica.where = ray.get(ref)
            except RayTaskError as err:  # the stage cannot start there (e.g. no work folder)
                raise StageError(f"stage '{self.stage}': {_cause(err)}") from None
            except RayError as err:
                self._lost(replica, err, on_done)
                return
            replica.begun = None
            self.waiting_since = time.monotonic()
            return
        task, _ = replica.in_flight[ref]
        try:
            ray.get(ref)
        except RayTaskError as err:  # the stage's own code failed: not retried, the rest runs
            del replica.in_flight[ref]
            self.failures.append((task, _cause(err)))
            if not isinstance(err.cause, BuilderError):  # a bug: its traceback is needed
                log.error("%s: chunk %d failed:\n%s", self.stage, task.index, err)
            return
        except RayError as err:  # its worker is gone, with every chunk it held
            self._lost(replica, err, on_done)
            return
        del replica.in_flight[ref]
        self.per_node[replica.where["node"]] += 1
        on_done(task)

    def _lost(self, replica: Replica, err: RayError, on_done: OnDone) -> None:
        """A replica died (its process or its node): its chunks go to the others, but for those
        it checkpointed before its answer was lost."""
        self.executor.drop(replica)
        self.lost_workers += 1
        reason = first_line(err)
        where = replica.where.get("host", "a node")
        for task, attempt in replica.in_flight.values():
            if self.checkpoint.is_done(task.index):
                log.info(
                    "%s: chunk %d was checkpointed before its worker was lost",
                    self.stage,
                    task.index,
                )
                self.per_node[replica.where.get("node", "?")] += 1
                on_done(task)
                continue
            if attempt >= self.config.max_retries:
                self.failures.append(
                    (task, f"its worker died {attempt + 1} times (last on {where}: {reason})")
                )
                continue
            log.warning(
                "%s: chunk %d lost with its worker on %s (%s); retrying it elsewhere (%d of %d)",
                self.stage, task.index, where, reason, attempt + 1, self.config.max_retries,
            )  # fmt: skip
            self.queue.appendleft((task, attempt + 1))
        replica.in_flight.clear()
        if self.lost_workers > self.limit * (self.config.max_retries + 1):
            raise StageError(f"stage '{self.stage}': its workers keep dying (last: {reason})")

    def _check_waiting(self) -> None:
        """No replica ready and none answering: give up after `start_timeout_s`."""
        if any(r.begun is None for r in self.executor.replicas):
            self.waiting_since = time.monotonic()
            return
        if time.monotonic() - self.waiting_since > self.config.start_timeout_s:
            shape = self.executor._shape
            raise StageError(
                f"stage '{self.stage}': no worker ({shape}) started within "
                f"{self.config.start_timeout_s:g} s; the cluster has "
                f"{describe_nodes([n['Resources'] for n in ray.nodes() if n['Alive']])}"
            )

    def _end_stage(self) -> None:
        """Each ready replica releases what only this stage needed. One still starting (its
        `begin` unanswered) is kept as it is for the next stage, whose `begin` ends this one's
        first; replicas of resources no later stage asks for are stopped by the executor."""
        ends = {r.handle.end.remote(): r for r in self.executor.replicas if r.begun is None}
        for ref, replica in ends.items():
            try:
                ray.get(ref, timeout=300)
            except Exception as err:  # noqa: BLE001  # a worker that cannot close is replaced
                log.warning("%s: a worker failed to close (%s)", self.stage, first_line(err))
                self.executor.drop(replica)
        nodes = ", ".join(f"{node[:8]}: {n}" for node, n in sorted(self.per_node.items()))
        log.info(
            "%s: %d chunks on %d nodes (%s); workers: %d kept from the previous stage, %d "
            "started, %d lost",
            self.stage, sum(self.per_node.values()), len(self.per_node), nodes or "none",
            self.kept, self.started, self.lost_workers,
        )  # fmt: skip


def _failure_report(stage: str, failures: list[tuple[ChunkTask, str]]) -> str:
    failures = sorted(failures, key=lambda f: f[0].index)
    shown = "; ".join(
        f"chunk {t.index} (rows {t.start}-{t.stop - 1}): {reason}" for t, reason in failures[:5]
    )
    more = f"; and {len(failures) - 5} more" if len(failures) > 5 else ""
    return (
        f"stage '{stage}': {len(failures)} chunks failed: {shown}{more}. Finished chunks are kept; "
        "a rerun redoes only the others"
    )


def _cause(err: RayTaskError) -> str:
    cause = err.cause
    if cause is None:
        return first_line(err)
    if isinstance(cause, BuilderError):  # says itself what is wrong
        return first_line(cause)
    return f"{type(cause).__name__}: {first_line(cause)}"


def first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0][:300]


def describe_nodes(nodes: list[dict[str, float]]) -> str:
    cpus = sum(n.get("CPU", 0) for n in nodes)
    gpus = sum(n.get("GPU", 0) for n in nodes)
    return f"{len(nodes)} nodes, {cpus:g} CPUs, {gpus:g} GPUs"
