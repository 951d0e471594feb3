"""One local sandbox worker seen from the host: its bwrap command line and its process.

The worker (`_worker.py`, with `_child.py`) runs as PID 1 of a bubblewrap sandbox; this module
starts it; the frames it speaks over its stdin/stdout, and its end, are `_pipe.FramedWorker`'s.
"""

from __future__ import annotations

import json
import logging
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from builder.sandbox._cgroups import SandboxCgroups
from builder.sandbox._pipe import FramedWorker, InfraError
from builder.sandbox.base import SandboxError, SandboxLimits

log = logging.getLogger(__name__)

HARNESS_DIR = "/opt/harness"  # where _worker.py and _child.py appear inside the sandbox
HARNESS_FILES = ("_worker.py", "_child.py", "_scratch.py")
SANDBOX_UID = 1000  # inside the user namespace; maps to the host user that runs us
STARTUP_TIMEOUT_S = 30.0
BWRAP_MISSING = (
    "bubblewrap ('bwrap') is not installed; install it with: apt-get install -y bubblewrap"
)
SCRATCH_DIRS = ("/tmp", "/dev/shm")  # private, writable, wiped after each program
WORKDIR = "/tmp/work"  # the program's working directory, made afresh for each program


def find_bwrap() -> str:
    path = shutil.which("bwrap")
    if path is None:
        raise SandboxError(BWRAP_MISSING)
    return path


@dataclass(frozen=True)
class Interpreter:
    executable: str
    ro_paths: tuple[str, ...]  # what must be bound read-only besides /usr for it to run
    version: str


def host_interpreter() -> Interpreter:
    """This process's base interpreter (the one behind a venv), which the sandbox reuses."""
    executable = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    paths = {os.path.realpath(sys.base_prefix), os.path.dirname(executable)}
    ro_paths = tuple(
        sorted(p for p in paths if not any(is_under(p, q) for q in (paths - {p}) | {"/usr"}))
    )
    return Interpreter(executable, ro_paths, sys.version)


def is_under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _system_binds() -> list[str]:
    """/usr read-only, and /bin, /lib... as on the host (symlinks into /usr on merged-/usr)."""
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    # Not all of /etc (host secrets live there): only what the loader and time functions read.
    for path in ("/etc/ld.so.cache", "/etc/localtime", "/etc/alternatives"):
        if os.path.exists(path):
            args += ["--ro-bind", path, path]
    return args


def bwrap_command(
    bwrap: str, interpreter: Interpreter, python_paths: Sequence[str], limits: SandboxLimits
) -> list[str]:
    here = Path(__file__).resolve().parent
    cmd = [
        bwrap,
        "--unshare-all", "--unshare-user", "--disable-userns",  # no net, own pid/ipc/uts/cgroup
        "--die-with-parent", "--as-pid-1", "--new-session",
        "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--hostname", "sandbox",
        "--clearenv", "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin",
        "--setenv", "HOME", "/tmp", "--setenv", "LANG", "C.UTF-8",
        *_system_binds(),
    ]  # fmt: skip
    for name in HARNESS_FILES:
        cmd += ["--ro-bind", str(here / name), f"{HARNESS_DIR}/{name}"]
    cmd += [
        "--proc", "/proc",
        # The sandbox user maps to the host user; when that is root, the kernel lets it write
        # global sysctls (e.g. kernel.core_pattern) without any capability. Read-only, always.
        "--ro-bind", "/proc/sys", "/proc/sys",
        "--dev", "/dev",
        "--size", str(limits.tmpfs_bytes), "--perms", "1777", "--tmpfs", "/tmp",
        "--size", str(limits.tmpfs_bytes), "--perms", "1777", "--tmpfs", "/dev/shm",
    ]  # fmt: skip
    # After the private /tmp and /dev/shm (bwrap mounts in order): an environment that lives
    # there (a CI container's venv under /tmp) is bound on top of them, not hidden by them.
    for path in (*interpreter.ro_paths, *python_paths):
        cmd += ["--ro-bind", path, path]
    # /dev is bwrap's own tmpfs (device nodes): read-only, so that nothing a program writes
    # there outlives it or escapes the tmpfs bounds (/dev/shm is its own mount, not affected).
    return [*cmd, "--remount-ro", "/dev", "--remount-ro", "/", "--chdir", "/tmp"]


def scratch_mounts(interpreter: Interpreter, python_paths: Sequence[str]) -> list[str]:
    """The read-only binds that live in the sandbox's scratch directories (/tmp, /dev/shm):
    the worker wipes those directories after each program, around these."""
    paths = (*interpreter.ro_paths, *python_paths)
    return sorted(p for p in paths if any(is_under(p, root) for root in SCRATCH_DIRS))


def worker_argv(
    interpreter: Interpreter, python_paths: Sequence[str], limits: SandboxLimits
) -> list[str]:
    config = {
        "timeout_s": limits.timeout_s,
        "cpu_time_s": limits.cpu_time_s,
        "memory_bytes": limits.memory_bytes,
        "max_processes": limits.max_processes,
        "max_file_size": limits.max_file_size,
        "max_open_files": limits.max_open_files,
        "max_output_bytes": limits.max_output_bytes,
        "keep_output_bytes": limits.keep_output_bytes,
        "python_paths": list(python_paths),
        "scratch_mounts": scratch_mounts(interpreter, python_paths),
    }
    return [interpreter.executable, "-I", f"{HARNESS_DIR}/_worker.py", json.dumps(config)]


class WorkerProcess(FramedWorker):
    """A running bwrap sandbox whose PID 1 is the worker. Not thread-safe: one owner thread talks
    to it (`kill` aside, see FramedWorker)."""

    def __init__(
        self,
        cmd: list[str],
        argv: list[str],
        cgroup_name: str,
        max_processes: int,
        memory_bytes: int | None = None,
    ) -> None:
        stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        info_r, info_w = os.pipe()
        try:
            # Only PATH: nothing of our environment (tokens...) needs to reach even bwrap. Its own
            # process group: Ctrl-C at a terminal signals the whole foreground group, and a worker
            # killed by it would count as broken and its program be re-run; the host decides.
            proc = subprocess.Popen(
                [*cmd, "--info-fd", str(info_w), *argv],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                pass_fds=(info_w,), env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                process_group=0,
            )  # fmt: skip
        except OSError as exc:
            stderr.close()
            os.close(info_r)
            raise InfraError(f"cannot start bwrap: {exc}") from None
        finally:
            os.close(info_w)
        self._attach(proc, stderr)
        self.cgroup = None
        try:
            child_pid = self._read_info(info_r)
            # +1: the worker itself is in the group; it forks nothing before the first program.
            self.cgroup = SandboxCgroups.create(cgroup_name, max_processes + 1, memory_bytes)
            if child_pid is not None:
                self.cgroup.add(child_pid)
            self.expect_ready(time.monotonic() + STARTUP_TIMEOUT_S)
        except OSError as exc:  # e.g. the cgroup refused the pid
            self.close()
            raise InfraError(f"cannot set up the sandbox worker: {exc}") from None
        except BaseException:
            self.close()
            raise
        finally:
            os.close(info_r)

    def _read_info(self, fd: int) -> int | None:
        """bwrap's --info-fd JSON gives the host pid of the sandbox's PID 1 (our worker)."""
        data = b""
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise InfraError("no answer from bwrap (its --info-fd) in time")
            if (chunk := os.read(fd, 1 << 16)) == b"":
                break
            data += chunk
            try:
                return int(json.loads(data)["child-pid"])
            except (ValueError, KeyError):
                continue
        try:
            status = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return None  # running, yet no info: go on without the cgroup
        raise InfraError(f"bwrap exited with status {status}: {self.stderr_tail()}")

    def close(self) -> None:
        super().close()
        if self.cgroup is not None:
            self.cgroup.remove()

    # kill(): SIGKILL to bwrap; --die-with-parent has the kernel kill the sandbox's PID 1 with
    # it, and all of the sandbox's PID namespace goes when its PID 1 does.
