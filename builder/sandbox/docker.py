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
      memory limit bounds the *sum* of the programs' memory (the local backend does the same
      with a memory cgroup where it can make one, else with a 20 ms guard).
    - Nothing of the host environment: the image has its own ENV, the child clears it again;
      `python_paths` are the only host directories it sees (bind-mounted read-only).

Failures
    A container that dies, hangs past timeout + grace, or answers garbage is removed and
    replaced; the program it was running is retried there `infra_retries` times before it is
    reported as infra_error, and the programs sent ahead are re-sent without counting a try.
    The slots are the local backend's (`_pool.Slot`): `close()` cancels what has not started,
    removes the containers that hold programs and retries nothing.

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

import functools
import logging
import os
import shutil
import uuid
from collections.abc import Sequence
from typing import Any

from builder.sandbox._docker_container import (
    DOCKER_MISSING,
    Container,
    ContainerSpec,
    check_daemon,
)
from builder.sandbox._docker_image import RECIPE_VERSION, ensure_image
from builder.sandbox._pool import PooledSandbox, checked_python_paths
from builder.sandbox._process import host_interpreter, worker_argv
from builder.sandbox.base import SandboxError, SandboxLimits, sandbox_memory

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
    binds_host_python = True

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
            memory_bytes=memory_bytes or sandbox_memory(self.limits),
            python_paths=self.python_paths,
        )
        self.workers = workers or len(os.sched_getaffinity(0))
        self.batch_size, self.infra_retries = batch_size, infra_retries
        prefix = f"builder-sandbox-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        spawn = functools.partial(Container, self.spec)
        self._start_slots(spawn, self.workers, prefix, batch_size=batch_size, retries=infra_retries)
        log.info("docker sandbox: %d containers of image %s", self.workers, self.image)

    def settings(self) -> dict[str, Any]:
        return {
            **super().settings(),
            "harness": self.harness_version,
            "image_recipe": RECIPE_VERSION,
            "python": self.interpreter.version,
            "python_paths": list(self.python_paths),
            "cpus": self.spec.cpus,
            "memory_bytes": self.spec.memory_bytes,
        }

    def container_names(self) -> list[str]:
        """Names of the running containers (for tests and diagnostics)."""
        return [slot.worker.name for slot in self._slots if slot.worker is not None]
