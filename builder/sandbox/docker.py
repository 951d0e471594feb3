"""The `docker` sandbox: a pool of long-lived containers, each running the local backend's worker.

Where things run
    One host thread per slot (default: one per usable CPU) owns one container started with
    `docker run -i`; its PID 1 is `_worker.py`, which forks `_child.py` for each program, so the
    earned-pass protocol, the verdicts and the per-program limits are exactly the local
    backend's (see builder.sandbox.local and base). A slot takes programs from a shared queue
    and holds up to `batch_size` of them in its container: one running, the others waiting in
    its pipe. The default is 1: sending ahead hides the ~1 ms round trip through the docker
    daemon, which helps on an idle host, but it measured slower (about 190 against 325
    samples/s, HumanEval+, 2 containers) on a busy host, which is where a pool sized to the
    CPUs runs (likely because the daemon then forwards the next program while one runs).

The image
    Built on this host with `docker import` from the host's own interpreter, standard library
    and shared libraries (see `_docker_image`): no base image and no registry. Tagged by content,
    so it is built once (about 2 s) and reused until something in it changes.

Isolation (per container)
    - `--network none` (only its own loopback), private IPC, UTS and PID namespaces.
    - Read-only root; writable: /tmp and /dev/shm, size-limited tmpfs, wiped after each program.
    - A random non-root uid per container (no /etc/passwd entry), every capability dropped,
      no-new-privileges, docker's default seccomp profile (unlike bwrap, which has none).
    - cgroup limits on the container as a whole: memory (no swap), CPU (`cpus`), and pids. The
      memory limit bounds the *sum* of the programs' memory, which the local backend cannot do.
    - Nothing of the host environment: the image has its own ENV, the child clears it again;
      `python_paths` are the only host directories it sees (bind-mounted read-only).

Failures
    A container that dies, hangs past timeout + grace, or answers garbage is removed and
    replaced; the program it was running is retried there `infra_retries` times before it is
    reported as infra_error, and the programs sent ahead are re-sent without counting a try.

What this does NOT protect against
    - Kernel exploits: containers share the host kernel (seccomp narrows what is reachable).
    - Anyone who can talk to the docker daemon is root on the host: the sandbox needs that
      access (root, or the `docker` group) in the process that runs it.
    - CPU side channels and contention between containers and with the host.
    - A program that deliberately inspects the interpreter to forge the pass nonce (as local).
    - `python_paths` as bind mounts need the daemon on this host (not a remote DOCKER_HOST).
    - The image holds the standard library only: a program that imports a third-party package
      fails unless its directory is in `python_paths` (the local backend sees the base
      interpreter's site-packages). No /etc (no passwd, hosts, time zone data).
    - If the cgroup OOM killer picks the worker rather than the program (it picks the largest
      process, so only when the memory is in tmpfs or spread over many small processes), the
      program ends as infra_error after its retries.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

from builder.sandbox._docker_container import (
    DOCKER_MISSING,
    Container,
    ContainerSpec,
    check_daemon,
    default_container_memory,
    remove_containers,
)
from builder.sandbox._docker_image import RECIPE_VERSION, ensure_image
from builder.sandbox._pool import Job, PooledSandbox, checked_python_paths
from builder.sandbox._process import InfraError, host_interpreter, worker_argv
from builder.sandbox.base import ExecResult, SandboxError, SandboxLimits
from builder.sandbox.local import GRACE_S, HARNESS_VERSION, RESULT_FIELDS

log = logging.getLogger(__name__)


class DockerSandbox(PooledSandbox):
    """The docker backend (see the module docstring). Checks docker, builds the image if it is
    not there yet and starts every container at once: a setup that cannot work fails here, as a
    one-line SandboxError.

    workers: containers (default: the usable CPUs). cpus: CPU quota of each container.
    memory_bytes: memory limit of each container (default: the per-program address-space limit
    plus both tmpfs plus 256 MiB for the worker). python_paths: extra import directories,
    bind-mounted read-only. batch_size: programs a container holds at once (one running, the
    rest waiting in its pipe; see above). infra_retries: re-runs of a program whose container
    failed.
    """

    name = "docker"

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        *,
        workers: int | None = None,
        cpus: float = 1.0,
        memory_bytes: int | None = None,
        python_paths: Sequence[str] = (),
        batch_size: int = 1,
        infra_retries: int = 2,
        docker: str = "docker",
    ) -> None:
        super().__init__(limits)
        if cpus <= 0 or batch_size < 1 or infra_retries < 0:
            raise SandboxError("docker sandbox: cpus must be > 0, batch_size >= 1, retries >= 0")
        docker_path = shutil.which(docker)
        if docker_path is None:
            raise SandboxError(DOCKER_MISSING)
        self.server_version = check_daemon(docker_path)
        self.interpreter = host_interpreter()
        self.python_paths = checked_python_paths(python_paths)
        self.image = ensure_image(docker_path, self.interpreter)
        self.spec = ContainerSpec(
            docker=docker_path,
            image=self.image,
            worker_argv=tuple(worker_argv(self.interpreter, self.python_paths, self.limits)),
            limits=self.limits,
            cpus=min(cpus, os.cpu_count() or 1),  # docker refuses more than the host has
            memory_bytes=memory_bytes or default_container_memory(self.limits),
            python_paths=self.python_paths,
        )
        self.workers = workers or len(os.sched_getaffinity(0))
        self.batch_size, self.infra_retries = batch_size, infra_retries
        self._jobs = queue.SimpleQueue()
        self._closing = threading.Event()
        prefix = f"builder-sandbox-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._slots = [
            _Slot(self.spec, batch_size, infra_retries, self._jobs, self._closing, f"{prefix}-{i}")
            for i in range(self.workers)
        ]
        self._finalizer = weakref.finalize(
            self, _shutdown, self._jobs, self._slots, self._closing, docker_path
        )
        self._wait_until_started(self._slots)
        log.info("docker sandbox: %d containers of image %s", self.workers, self.image)

    def settings(self) -> dict[str, Any]:
        return {
            **super().settings(),
            "harness": HARNESS_VERSION,
            "image_recipe": RECIPE_VERSION,
            "python": self.interpreter.version,
            "python_paths": list(self.python_paths),
            "cpus": self.spec.cpus,
            "memory_bytes": self.spec.memory_bytes,
        }

    def container_names(self) -> list[str]:
        """Names of the running containers (for tests and diagnostics)."""
        return [slot.container.name for slot in self._slots if slot.container is not None]


def _shutdown(jobs, slots, closing: threading.Event, docker: str) -> None:
    """Cancel what was not started, remove the containers that still hold programs (so that an
    interrupted run ends at once), and let each slot thread take one None and end."""
    closing.set()
    while True:
        try:
            job = jobs.get_nowait()
        except queue.Empty:
            break
        if job is not None:
            job.future.cancel()
    for _ in slots:
        jobs.put(None)
    remove_containers(docker, [s.container.name for s in slots if s.busy and s.container])
    for slot in slots:
        slot.thread.join()


class _Slot:
    """One host thread owning one container, with up to `batch_size` programs sent to it."""

    def __init__(self, spec, batch_size, retries, jobs, closing, name) -> None:
        self.spec, self.batch_size, self.retries = spec, batch_size, retries
        self.jobs, self.closing, self.name = jobs, closing, name
        self.container: Container | None = None
        self.busy = False  # holds programs (read by _shutdown from another thread)
        self.spawns = 0
        self.started: Future = Future()
        self.thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        try:
            self._spawn()
        except Exception as exc:  # noqa: BLE001 - handed to DockerSandbox.__init__
            self.started.set_exception(exc)
            return
        self.started.set_result(None)
        batch: deque[Job] = deque()  # in order: batch[0] runs (or runs next) in the container
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
        """Send what the container does not have yet, then wait for the result of batch[0]."""
        try:
            if self.container is None:
                self._spawn()
            if self._sent == 0:  # the container is idle: batch[0] starts now
                self._head_since = time.monotonic()
            for job in list(batch)[self._sent :]:
                self.container.send(job.program.code)
            self._sent = len(batch)
            reply = self.container.receive(self._head_since + self.spec.limits.timeout_s + GRACE_S)
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
        """batch[0] was running when the container failed: count a try, give up after retries."""
        if self.closing.is_set():  # close() removed the container: no verdict, no new container
            while batch:
                job = batch.popleft()
                job.future.set_result(
                    ExecResult(id=job.program.id, status="infra_error", error="sandbox closed")
                )
            return
        job = batch[0]
        job.attempts += 1
        log.warning(
            "docker sandbox infra error on %s (attempt %d): %s", job.program.id, job.attempts, error
        )
        if job.attempts > self.retries:
            batch.popleft()
            job.future.set_result(
                ExecResult(id=job.program.id, status="infra_error", error=error[-300:])
            )

    def _spawn(self) -> None:
        self.spawns += 1
        self.container = Container(self.spec, f"{self.name}-{self.spawns}")
        self._sent = 0
        self._head_since = time.monotonic()

    def _stop(self, kill: bool = False) -> None:
        if self.container is not None:
            if kill:
                self.container.kill()
            else:
                self.container.close()
            self.container = None
