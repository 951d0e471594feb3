"""What the pooled backends (local, docker, e2b) share: `run` puts each program, as a `Job`, into
one queue; host threads ("slots", each owning one worker: a bwrap sandbox, a container, an E2B
sandbox) take the jobs and set their results.

The local and docker backends share the slot itself (`Slot`): one host thread owning one
`FramedWorker` (`_pipe`), up to `batch_size` programs sent to it (one running, the others
waiting in its pipe), a worker that dies or hangs replaced and its program retried. Closing
(`close()`, or Ctrl-C reaching a `with` block) cancels what no worker has started, kills the
workers that hold programs and retries nothing: an interrupted run ends at once, and what
finished before stays finished (see `run_iter`).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from builder.sandbox._pipe import FramedWorker, InfraError
from builder.sandbox._process import SCRATCH_DIRS, WORKDIR, is_under
from builder.sandbox.base import ExecResult, Program, Sandbox, SandboxError

log = logging.getLogger(__name__)

GRACE_S = 15.0  # host-side wait beyond the program's timeout before the worker counts as hung
RESULT_FIELDS = ("status", "duration_s", "stdout", "stderr", "exit_code", "error")
CLOSED = "sandbox closed"
WAIT_SLICE_S = 0.25  # how long the main thread blocks at most before it looks at signals


@dataclass
class Job:
    program: Program
    future: Future  # set to its ExecResult by the slot that ran it
    attempts: int = 0  # runs the sandbox itself cut short (backends that retry count them)


class PooledSandbox(Sandbox):
    """A sandbox whose slots take programs from `self._jobs`.

    A subclass's `__init__` either calls `_start_slots` (local, docker) or creates `_jobs` and
    its own slots and sets `_finalizer` (a `weakref.finalize` that stops the slots and their
    workers, so that they also go on garbage collection or at exit when `close()` is never
    called).
    """

    _jobs: queue.SimpleQueue
    _finalizer: weakref.finalize
    _closed = False

    def run(self, programs: Sequence[Program]) -> list[ExecResult]:
        jobs = self._submit(programs)
        wait_all([job.future for job in jobs])
        return [job.future.result() for job in jobs]

    def run_iter(self, programs: Sequence[Program]) -> Iterator[ExecResult]:
        for future in completed([job.future for job in self._submit(programs)]):
            yield future.result()

    def _submit(self, programs: Sequence[Program]) -> list[Job]:
        if self._closed:
            raise SandboxError("this sandbox is closed")
        jobs = [Job(program, Future()) for program in programs]
        for job in jobs:
            self._jobs.put(job)
        return jobs

    def close(self) -> None:
        self._closed = True
        self._finalizer()

    def _start_slots(
        self, spawn: Callable[[str], FramedWorker], count: int, prefix: str, *,
        batch_size: int = 1, retries: int, hint: str = "",
    ) -> None:  # fmt: skip
        """Start `count` slots whose workers come from `spawn(name)`, and wait for them.
        `spawn` must not refer to the sandbox (the finalizer keeps it)."""
        self._jobs = queue.SimpleQueue()
        closing = threading.Event()
        deadline_s = self.limits.timeout_s + GRACE_S
        self._slots = [
            Slot(spawn, f"{prefix}-{i}", self._jobs, closing, deadline_s, batch_size, retries)
            for i in range(count)
        ]
        self._finalizer = weakref.finalize(self, shutdown, self._jobs, self._slots, closing)
        self._wait_until_started(self._slots, hint)

    def _wait_until_started(self, slots: Sequence, hint: str = "") -> None:
        """Wait for every slot's first worker (each slot sets its `started` future). A setup that
        cannot work closes the sandbox and fails as a one-line SandboxError."""
        try:
            wait_all([slot.started for slot in slots])
            for slot in slots:
                slot.started.result()
        except BaseException as exc:
            self.close()
            if not isinstance(exc, InfraError):
                raise
            reason = " ".join(str(exc).split())  # one line, whatever the tool printed
            raise SandboxError(f"the {self.name} sandbox cannot start: {reason}{hint}") from None


def completed(futures: list[Future]) -> Iterator[Future]:
    """The futures as they finish. Each tells a queue when it is done, which a future cancelled
    with cancel() (what close() does to queued jobs) does too, while concurrent.futures.wait()
    never counts it as done. The queue is read in slices: a wait with no timeout is a lock
    that a signal delivered to another thread never interrupts, so Ctrl-C could go unnoticed
    until every program had finished (the slices let the main thread run its handler)."""
    finished: queue.SimpleQueue[Future] = queue.SimpleQueue()
    for future in futures:
        future.add_done_callback(finished.put)  # at once for one already done
    for _ in futures:
        while True:
            try:
                future = finished.get(timeout=WAIT_SLICE_S)
            except queue.Empty:
                continue
            yield future
            break


def wait_all(futures: list[Future]) -> None:
    for _ in completed(futures):
        pass


def checked_python_paths(python_paths: Sequence[str]) -> tuple[str, ...]:
    """The extra import directories, resolved; a SandboxError names one that is not a directory,
    or one that would cover the sandbox's scratch space (it may live inside it: under /tmp)."""
    resolved = tuple(os.path.realpath(p) for p in python_paths)
    for path in resolved:
        if not os.path.isdir(path):
            raise SandboxError(f"python path {path} is not a directory")
        if is_under(path, WORKDIR) or any(is_under(root, path) for root in SCRATCH_DIRS):
            raise SandboxError(
                f"python path {path} would cover the sandbox's own {WORKDIR} or scratch"
                f" directories {', '.join(SCRATCH_DIRS)}: use the directory of the packages"
            )
    return resolved


def cancel_queued(jobs: queue.SimpleQueue) -> None:
    """Cancel every job still in the queue (no worker started it)."""
    while True:
        try:
            job = jobs.get_nowait()
        except queue.Empty:
            return
        if job is not None:
            job.future.cancel()


def shutdown(jobs: queue.SimpleQueue, slots: list[Slot], closing: threading.Event) -> None:
    """Cancel what was not started, kill the workers that hold programs (so that an interrupted
    run ends at once), and let each slot thread take one None and end."""
    closing.set()
    cancel_queued(jobs)
    for _ in slots:
        jobs.put(None)
    killers = [threading.Thread(target=slot.interrupt) for slot in slots]
    for thread in killers:  # at once: removing a container takes the docker daemon a while
        thread.start()
    for thread in [*killers, *(slot.thread for slot in slots)]:
        thread.join()


class Slot:
    """One host thread owning one worker, with up to `batch_size` programs sent to it. The thread
    also spawns the worker, because bwrap's --die-with-parent fires when the spawning *thread*
    exits."""

    def __init__(self, spawn, name, jobs, closing, deadline_s, batch_size, retries) -> None:
        self.spawn, self.name, self.jobs, self.closing = spawn, name, jobs, closing
        self.deadline_s, self.batch_size, self.retries = deadline_s, batch_size, retries
        self.worker: FramedWorker | None = None
        self.busy = False  # holds programs (read by shutdown from another thread)
        self.spawns = 0
        self.started: Future = Future()
        self.thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self.thread.start()

    def interrupt(self) -> None:
        """From another thread, once `closing` is set: kill the worker if it holds programs."""
        worker = self.worker
        if self.busy and worker is not None:
            worker.kill()

    def _loop(self) -> None:
        try:
            self._spawn()
        except Exception as exc:  # noqa: BLE001 - handed to the sandbox's __init__
            self.started.set_exception(exc)
            return
        self.started.set_result(None)
        batch: deque[Job] = deque()  # in order: batch[0] runs (or runs next) in the worker
        try:
            while self._fill(batch):
                self.busy = True
                try:
                    self._step(batch)
                except Exception as exc:  # noqa: BLE001 - a bug here must not hang run()
                    for job in batch:
                        job.future.set_exception(exc)
                    batch.clear()
                    self._stop(kill=True)
                self.busy = bool(batch)
        finally:
            self._stop()

    def _fill(self, batch: deque[Job]) -> bool:
        """Top the batch up from the queue (blocking only when it is empty); False: stop."""
        while len(batch) < self.batch_size:
            try:
                job = self.jobs.get(block=not batch)
            except queue.Empty:
                break
            if job is None:
                self.jobs.put(None)  # for our next _fill: drain what we hold, then stop
                return bool(batch)
            batch.append(job)
        return True

    def _step(self, batch: deque[Job]) -> None:
        """Send what the worker does not have yet, then wait for the result of batch[0]."""
        try:
            if self.worker is None:
                self._spawn()
            # After `busy` and the worker are set: either shutdown() sees them and kills the
            # worker, or we see `closing` here and send nothing more.
            if self.closing.is_set():
                raise InfraError(CLOSED)
            if self._sent == 0:  # the worker is idle: batch[0] starts now
                self._head_since = time.monotonic()
            for job in list(batch)[self._sent :]:
                self.worker.send(job.program.code)
            self._sent = len(batch)
            reply = self.worker.receive(self._head_since + self.deadline_s)
        except InfraError as exc:
            self._stop(kill=True)
            self._retry(batch, str(exc))
            return
        job = batch.popleft()
        self._sent -= 1
        self._head_since = time.monotonic()
        if reply.get("recycle"):  # the worker ends after this answer; the rest goes to a new one
            self._stop()
        if reply["status"] == "infra_error":
            batch.appendleft(job)
            self._stop(kill=True)
            self._retry(batch, reply.get("error", ""))
            return
        job.future.set_result(ExecResult(id=job.program.id, **{k: reply[k] for k in RESULT_FIELDS}))

    def _retry(self, batch: deque[Job], error: str) -> None:
        """batch[0] was running when the worker failed: count a try, give up after retries. The
        programs sent after it go again to the next worker without counting a try."""
        if self.closing.is_set():  # close() killed the worker: no verdict, no new worker
            while batch:
                job = batch.popleft()
                job.future.set_result(ExecResult(id=job.program.id, status="infra_error",
                                                 error=CLOSED))  # fmt: skip
            return
        job = batch[0]
        job.attempts += 1
        log.warning(
            "%s: sandbox infra error on %s (attempt %d): %s",
            self.name, job.program.id, job.attempts, error,
        )  # fmt: skip
        if job.attempts > self.retries:
            batch.popleft()
            job.future.set_result(
                ExecResult(id=job.program.id, status="infra_error", error=error[-300:])
            )

    def _spawn(self) -> None:
        self.spawns += 1
        self.worker = self.spawn(f"{self.name}-{self.spawns}")
        self._sent = 0
        self._head_since = time.monotonic()

    def _stop(self, kill: bool = False) -> None:
        if self.worker is not None:
            worker, self.worker = self.worker, None
            if kill:
                worker.kill()
            worker.close()
