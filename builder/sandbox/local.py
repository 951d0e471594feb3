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
      /proc/sys read-only) and a minimal, read-only /dev. Nothing of $HOME, /root, the project
      or the host /tmp. Writable: only /tmp and /dev/shm, private size-limited tmpfs, wiped
      after each program. The harness files are bound read-only at /opt/harness. An interpreter or
      python path that lives under /tmp (a CI job's venv) is bound on top of the private /tmp,
      at its own path, and survives the wipe (the directories that lead to it are emptied).
    - The environment is cleared (--clearenv; the child resets it again), so tokens in the host
      environment (HF_TOKEN, ...) never enter; /proc shows only the sandbox's own processes.
    - The sandbox dies with the host thread that started it (--die-with-parent).

Limits (set with setrlimit in each forked child; see SandboxLimits)
    CPU time, address space (default 4 GiB), file size, open files, no core dumps; processes
    via RLIMIT_NPROC, which the kernel (5.14+) counts per user namespace, i.e. per sandbox. The
    kernel exempts uid 0 from RLIMIT_NPROC, so when the host user is root each sandbox also goes
    into its own cgroup v1 `pids` group (when /sys/fs/cgroup/pids is writable). In every case
    the worker counts the namespace's processes every 20 ms and kills the program when it has
    more than `max_processes` (a backstop, not a hard cap).
    Memory as a sum: RLIMIT_AS bounds each process alone, so where the memory hierarchy is
    writable (root, cgroup v1) each sandbox goes into a memory cgroup of the docker container's
    size (`sandbox_memory`: the program's limit, both tmpfs, room for the worker; no swap), and
    the program's processes are the OOM killer's first choice. In every case the worker sums
    the proportional resident memory of the program's processes every 20 ms and kills it above
    `memory_bytes` ("memory limit exceeded ... in all its processes"): without the cgroup, that
    guard is the only bound on the sum, and a program that allocates faster than it looks can
    overshoot by what it allocates in 20 ms. See `_cgroups.py` (stale groups of a killed run
    are removed by the next). Wall-clock timeout and output caps
    are enforced by the worker, which then SIGKILLs every process in the namespace and reaps
    them all: nothing the program started (daemons, orphans, zombies) survives its run.

Verdicts: see builder.sandbox.base. A pass needs the per-run nonce from the child after the code
object returned (see _child.py); a dead or silent worker is `infra_error`, retried on a fresh
sandbox `infra_retries` times. The slots are the docker backend's (`_pool.Slot`), closing
included: `close()` (or Ctrl-C reaching a `with` block) cancels what has not started, kills the
sandboxes that hold programs and retries nothing. The bwrap processes run in their own process
group, so that Ctrl-C at a terminal reaches only the host process, which then closes the pool.

What this does NOT protect against
    - Kernel exploits: all sandboxes share the host kernel; a kernel bug reachable from an
      unprivileged user namespace (no seccomp filter is installed) is a way out.
    - CPU side channels (Spectre-class, cache timing) and resource contention: programs share
      CPUs, caches and memory bandwidth with each other and with the host.
    - Memory across processes where no memory cgroup can be made (a non-root user, cgroup v2
      without delegation): only the worker's 20 ms guard bounds the sum (see Limits).
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
    - The interpreter's install is bound read-only wherever it lives, even under $HOME (pyenv);
      under /tmp, programs see the names of the directories that lead to it.
    - Timing: under load, programs near the time limit may flip between pass and timeout.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from typing import Any

from builder.sandbox._pool import PooledSandbox, checked_python_paths
from builder.sandbox._process import (
    WorkerProcess,
    bwrap_command,
    find_bwrap,
    host_interpreter,
    worker_argv,
)
from builder.sandbox.base import SandboxLimits, sandbox_memory

log = logging.getLogger(__name__)

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
    binds_host_python = True

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
        self.workers = workers or len(os.sched_getaffinity(0))
        self.infra_retries = infra_retries
        spawn = functools.partial(
            _spawn,
            bwrap_command(bwrap, self.interpreter, self.python_paths, self.limits),
            worker_argv(self.interpreter, self.python_paths, self.limits),
            self.limits.max_processes,
            sandbox_memory(self.limits),  # the docker backend's container size
        )
        prefix = f"builder-sandbox-{os.getpid()}-{id(self)}"
        self._start_slots(
            spawn, self.workers, prefix, retries=infra_retries, hint=f" {USERNS_HINT}"
        )
        log.info("local sandbox: %d workers, python %s", self.workers, self.interpreter.executable)

    def settings(self) -> dict[str, Any]:
        return {
            **super().settings(),
            "harness": self.harness_version,
            "python": self.interpreter.version,
            "python_paths": list(self.python_paths),
        }

    def worker_pids(self) -> list[int]:
        """Host pids of the running bwrap processes (for tests and diagnostics)."""
        return [slot.worker.proc.pid for slot in self._slots if slot.worker is not None]


def _spawn(
    cmd: list[str], argv: list[str], max_processes: int, memory_bytes: int, name: str
) -> WorkerProcess:
    """A worker for a slot; `name` also names its cgroups."""
    return WorkerProcess(cmd, argv, name, max_processes, memory_bytes)
