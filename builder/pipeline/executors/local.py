"""The local executor: a stage's chunks in this process, or in worker processes on this machine.

A stage whose `resources().workers` is 1 runs in the driver's own process, with the executor's
resources: these live for the whole run, so that the generation stages share one engine. A stage
that asks for more workers gets that many processes (spawned, not forked: the driver may hold
threads whose locks a forked child would inherit locked), each with one `Worker` that keeps its
stage's resources until the stage ends. At most two chunks per worker are in flight, which bounds
memory whatever the input's size. A worker that dies (killed, out of memory) fails the stage with
a one-line error naming the chunks it may have held; finished chunks stay checkpointed.
"""

from __future__ import annotations

import logging
import multiprocessing
import pickle
import queue
import traceback
from collections.abc import Iterable

from builder.errors import StageError
from builder.pipeline.chunk_data import ChunkTask
from builder.pipeline.executors.base import Executor, OnDone, RowJob, Worker
from builder.pipeline.resources import WorkerResources

log = logging.getLogger(__name__)


class LocalExecutor(Executor):
    name = "local"

    def __init__(self, config=None):
        super().__init__(config)
        self.resources = WorkerResources()  # the driver's own worker's, for the whole run

    def run(self, job: RowJob, tasks: Iterable[ChunkTask], on_done: OnDone) -> None:
        workers = max(1, self.resources_for(job.stage).workers)
        if workers == 1:
            self._run_here(job, tasks, on_done)
        else:
            _ProcessPool(job, workers).run(tasks, on_done)

    def _run_here(self, job: RowJob, tasks: Iterable[ChunkTask], on_done: OnDone) -> None:
        worker = Worker(job, self.resources)
        try:
            for task in tasks:
                worker.run(task)
                on_done(task)
        finally:
            worker.close()
            self.resources.end_step()

    def close(self) -> None:
        self.resources.close()


def _worker_main(job: RowJob, tasks, results) -> None:
    """A worker process: chunks from `tasks` until None, one (index, error) answer each."""
    resources = WorkerResources()
    worker = Worker(job, resources)
    try:
        for task in iter(tasks.get, None):
            try:
                worker.run(task)
                results.put((task.index, None))
            except BaseException as err:  # noqa: BLE001  # reported to the driver, raised there
                results.put((task.index, _portable(err)))
                if not isinstance(err, Exception):
                    raise
    finally:
        worker.close()
        resources.close()


def _portable(err: BaseException) -> tuple[BaseException | None, str]:
    """The exception if it survives pickling, and its traceback as text."""
    text = "".join(traceback.format_exception(err))
    try:
        pickle.loads(pickle.dumps(err))
        return err, text
    except Exception:  # noqa: BLE001
        return None, text


class _RemoteTraceback(Exception):
    def __str__(self) -> str:
        return self.args[0]


class _ProcessPool:
    def __init__(self, job: RowJob, workers: int):
        context = multiprocessing.get_context("spawn")
        self.tasks = context.Queue()
        self.results = context.Queue()
        self.processes = [
            # Not daemonic: a stage's worker may start processes of its own.
            context.Process(target=_worker_main, args=(job, self.tasks, self.results))
            for _ in range(workers)
        ]
        self.in_flight: dict[int, ChunkTask] = {}

    def run(self, tasks: Iterable[ChunkTask], on_done: OnDone) -> None:
        for process in self.processes:
            process.start()
        try:
            for task in tasks:
                self.tasks.put(task)
                self.in_flight[task.index] = task
                while len(self.in_flight) >= 2 * len(self.processes):
                    self._collect_one(on_done)
            while self.in_flight:
                self._collect_one(on_done)
        except BaseException:
            self._stop(kill=True)
            raise
        self._stop(kill=False)

    def _collect_one(self, on_done: OnDone) -> None:
        while True:
            try:
                index, error = self.results.get(timeout=1.0)
                break
            except queue.Empty:
                dead = [p for p in self.processes if not p.is_alive()]
                if dead:
                    chunks = ", ".join(str(i) for i in sorted(self.in_flight))
                    raise StageError(
                        f"a worker process died (exit code {dead[0].exitcode}) with chunks "
                        f"{chunks} in flight; finished chunks are kept, rerun to resume"
                    ) from None
        task = self.in_flight.pop(index)
        if error is not None:
            exception, text = error
            if exception is None:
                raise RuntimeError(f"chunk {index} failed in a worker:\n{text}")
            raise exception from _RemoteTraceback(text)
        on_done(task)

    def _stop(self, kill: bool) -> None:
        if not kill:
            for _ in self.processes:
                self.tasks.put(None)
        for process in self.processes:
            process.join(timeout=None if not kill else 0.1)
            if process.is_alive():
                process.kill()
                process.join()
        for q in (self.tasks, self.results):
            q.close()
            q.cancel_join_thread()
