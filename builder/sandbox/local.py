"""The `local` sandbox: a pool of bubblewrap sandboxes on this machine, each with a forking worker.

Where things run
    The host keeps one thread per slot (default: one per usable CPU). Each thread owns one
    long-lived `bwrap` sandbox whose PID 1 is `_worker.py`; for every program the worker forks a
    child (`_child.py`) that executes the program in the same sandbox. Forking a warm interpreter
    costs a millisecond or two, against 20-30 ms for a fresh bwrap + python (see
    benchmarks/bench_sandbox.py: about 8x the throughput of a fresh `python -c` per sample).

Isolation (bwrap, per worker sandbox)
    - New user, pid, net, ipc, uts and cgroup namespaces; no network (only the sandbox's own
      loopback: the host's 127.0.0.1 is out of reach); nested user namespaces disabled.
    - Filesystem: an empty read-only root with /usr, /bin, /lib*, the interpreter's install and
      any `python_paths` bound read-only, a few loader files of /etc, its own /proc (with
      /proc/sys read-only) and a minimal /dev. Nothing of $HOME, /root, the project or the host
      /tmp. Writable: only /tmp and /dev/shm, private size-limited tmpfs, wiped after each
      program. The harness files are bound read-only at /opt/harness.
    - The environment is cleared (--clearenv; the child resets it again), so tokens in the host
      environment (HF_TOKEN, ...) never enter; /proc shows only the sandbox's own processes.
    - The sandbox dies with the host thread that started it (--die-with-parent).

Limits (set with setrlimit in each forked child; see SandboxLimits)
    CPU time, address space (default 4 GiB), file size, open files, no core dumps; processes
    via RLIMIT_NPROC, which the kernel (5.14+) counts per user namespace, i.e. per sandbox. The
    kernel exempts uid 0 from RLIMIT_NPROC, so when the host user is root each sandbox also goes
    into its own cgroup v1 `pids` group (when /sys/fs/cgroup/pids is writable). In every case
    the worker counts the namespace's processes every 20 ms and kills the program when it has
    more than `max_processes` (a backstop, not a hard cap). Wall-clock timeout and output caps
    are enforced by the worker, which then SIGKILLs every process in the namespace and reaps
    them all: nothing the program started (daemons, orphans, zombies) survives its run.

Verdicts: see builder.sandbox.base. A pass needs the per-run nonce from the child after the code
object returned (see _child.py); a dead or silent worker is `infra_error`, retried on a fresh
sandbox `infra_retries` times.

What this does NOT protect against
    - Kernel exploits: all sandboxes share the host kernel; a kernel bug reachable from an
      unprivileged user namespace (no seccomp filter is installed) is a way out.
    - CPU side channels (Spectre-class, cache timing) and resource contention: programs share
      CPUs, caches and memory bandwidth with each other and with the host.
    - Memory across processes: RLIMIT_AS bounds each process, not their sum; a program with
      `max_processes` processes of 4 GiB each, plus the tmpfs, can exhaust host memory (and
      trigger the host OOM killer). No cgroup memory limit is set.
    - A program that deliberately inspects the interpreter it runs in (frames, gc, fd 1023) can
      find the nonce and forge a pass: verdicts are robust to careless or lazy code (early
      exits, -O, exit-0 tricks), not to code written to attack this harness.
    - When the host user is root, the sandbox user maps to host root: files it can see (all
      read-only) belong to it, and kernel checks that test for uid 0 rather than a capability
      apply. /proc/sys is read-only for that reason; prefer running as a normal user.
    - No seccomp filter: every syscall an unprivileged user-namespace process may make is
      allowed. /proc shows host-wide information (cpuinfo, meminfo, loadavg, kernel version).
    - Leftovers between programs of one worker: /tmp, /dev/shm and SysV IPC are cleaned (or the
      sandbox recycled), but POSIX message queues are not checked.
    - The interpreter's install is bound read-only wherever it lives, even under $HOME (pyenv).
    - Timing: under load, programs near the time limit may flip between pass and timeout.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import weakref
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from builder.sandbox._pool import PooledSandbox, checked_python_paths
from builder.sandbox._process import (
    InfraError,
    WorkerProcess,
    bwrap_command,
    find_bwrap,
    host_interpreter,
    worker_argv,
)
from builder.sandbox.base import ExecResult, Program, SandboxError, SandboxLimits

log = logging.getLogger(__name__)

HARNESS_VERSION = 1  # bump when a change to the harness can change a verdict
GRACE_S = 15.0  # host-side wait beyond the program's timeout before the worker counts as hung
RESULT_FIELDS = ("status", "duration_s", "stdout", "stderr", "exit_code", "error")
USERNS_HINT = (
    "(bwrap needs unprivileged user namespaces; on Ubuntu 24.04:"
    " sysctl kernel.apparmor_restrict_unprivileged_userns=0)"
)


class LocalSandbox(PooledSandbox):
    """The local backend (see the module docstring). Starts its workers at once: a setup that
    cannot work (no bwrap, no user namespaces) fails here, as a one-line SandboxError.

    workers: programs run at once (default: the usable CPUs). python_paths: extra import
    directories (e.g. a venv's site-packages), bound read-only and put on the programs'
    sys.path; the sandbox runs the host's *base* interpreter, so nothing else of a venv is
    there. infra_retries: how often a program whose run failed for infrastructure reasons is
    re-run on a fresh sandbox before it is reported as infra_error.
    """

    name = "local"

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        *,
        workers: int | None = None,
        python_paths: Sequence[str] = (),
        infra_retries: int = 2,
    ) -> None:
        super().__init__(limits)
        bwrap = find_bwrap()
        self.interpreter = host_interpreter()
        self.python_paths = checked_python_paths(python_paths)
        for path in self.python_paths:
            if Path(path).is_relative_to("/tmp"):  # the sandbox mounts its own empty /tmp
                raise SandboxError(
                    f"python path {path} is under /tmp, which the sandbox replaces with its own: "
                    "keep the environment elsewhere"
                )
        self.workers = workers or len(os.sched_getaffinity(0))
        self.infra_retries = infra_retries
        self._jobs = queue.SimpleQueue()
        cmd = bwrap_command(bwrap, self.interpreter, self.python_paths, self.limits)
        argv = worker_argv(self.interpreter, self.python_paths, self.limits)
        prefix = f"builder-sandbox-{os.getpid()}-{id(self)}"
        self._slots = [
            _Slot(cmd, argv, self.limits, infra_retries, self._jobs, f"{prefix}-{i}")
            for i in range(self.workers)
        ]
        self._finalizer = weakref.finalize(self, _shutdown, self._jobs, self._slots)
        self._wait_until_started(self._slots, hint=f" {USERNS_HINT}")
        log.info("local sandbox: %d workers, python %s", self.workers, self.interpreter.executable)

    def settings(self) -> dict[str, Any]:
        return {
            **super().settings(),
            "harness": HARNESS_VERSION,
            "python": self.interpreter.version,
            "python_paths": list(self.python_paths),
        }

    def worker_pids(self) -> list[int]:
        """Host pids of the running bwrap processes (for tests and diagnostics)."""
        return [slot.worker.proc.pid for slot in self._slots if slot.worker is not None]


def _shutdown(jobs: queue.SimpleQueue, slots: list[_Slot]) -> None:
    """Each slot thread takes one None, stops its worker and ends."""
    for _ in slots:
        jobs.put(None)
    for slot in slots:
        slot.thread.join()


class _Slot:
    """One host thread owning one sandbox worker. The thread also spawns the worker, because
    bwrap's --die-with-parent fires when the spawning *thread* exits."""

    def __init__(self, cmd, argv, limits, retries, jobs, cgroup_name) -> None:
        self.cmd, self.argv, self.limits, self.retries = cmd, argv, limits, retries
        self.jobs, self.cgroup_name = jobs, cgroup_name
        self.worker: WorkerProcess | None = None
        self.spawns = 0
        self.started: Future = Future()
        self.thread = threading.Thread(target=self._loop, name=cgroup_name, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        try:
            self._spawn()
        except Exception as exc:  # noqa: BLE001 - handed to LocalSandbox.__init__
            self.started.set_exception(exc)
            return
        self.started.set_result(None)
        try:
            while (job := self.jobs.get()) is not None:
                try:
                    job.future.set_result(self._run(job.program))
                # A bug here must not leave run() waiting forever.
                except Exception as exc:  # noqa: BLE001
                    job.future.set_exception(exc)
        finally:
            self._stop()

    def _spawn(self) -> None:
        self.spawns += 1
        self.worker = WorkerProcess(
            self.cmd, self.argv, f"{self.cgroup_name}-{self.spawns}", self.limits.max_processes
        )

    def _stop(self) -> None:
        if self.worker is not None:
            self.worker.close()
            self.worker = None

    def _run(self, program: Program) -> ExecResult:
        error = ""
        for attempt in range(self.retries + 1):
            try:
                if self.worker is None:
                    self._spawn()
                reply = self.worker.execute(program.code, self.limits.timeout_s + GRACE_S)
            except InfraError as exc:
                error = str(exc)
                log.warning(
                    "sandbox infra error on %s (attempt %d): %s", program.id, attempt + 1, exc
                )
                self._stop()
                continue
            if reply.get("recycle"):
                self._stop()
            if reply["status"] == "infra_error":
                error = reply.get("error", "")
                log.warning(
                    "sandbox infra error on %s (attempt %d): %s", program.id, attempt + 1, error
                )
                continue
            return ExecResult(id=program.id, **{k: reply[k] for k in RESULT_FIELDS})
        return ExecResult(id=program.id, status="infra_error", error=error[-300:])
