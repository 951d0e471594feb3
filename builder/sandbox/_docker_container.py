"""One docker sandbox container seen from the host: its `docker run` line, its pipes, its end.

The container's PID 1 is the local backend's worker (`_worker.py`, which forks `_child.py` for
each program): `docker run -i` attaches its stdin/stdout, over which the host speaks the same
length-prefixed JSON frames as with bubblewrap (`_pipe.FramedWorker`). The host may send a few
programs ahead, so a container never waits for the host between two programs.
"""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass

from builder.sandbox._pipe import FramedWorker, InfraError
from builder.sandbox.base import SandboxError, SandboxLimits

log = logging.getLogger(__name__)

STARTUP_TIMEOUT_S = 60.0  # docker run + interpreter start; slow on a loaded host
DOCKER_TIMEOUT_S = 60.0  # for `docker version`, `docker rm`...
OWNER_LABEL = "builder.sandbox.owner"  # host pid of the process that started the container
DOCKER_MISSING = (
    "the docker CLI is not installed; install docker with: apt-get install -y docker.io"
)
# Each container runs as its own random uid: without user namespaces a uid is shared by the
# whole host, and RLIMIT_NPROC counts a uid's processes in every container at once.
UID_RANGE = (1_000_000, 2_000_000_000)


def check_daemon(docker: str) -> str:
    """The docker server's version, or a one-line SandboxError saying why it is unreachable."""
    try:
        done = subprocess.run(
            [docker, "version", "--format", "{{.Server.Version}}"],
            capture_output=True, text=True, timeout=DOCKER_TIMEOUT_S, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise SandboxError("the docker daemon did not answer `docker version` in time") from None
    if done.returncode != 0 or not done.stdout.strip():
        reason = " ".join(done.stderr.split())[-300:]
        raise SandboxError(
            f"the docker daemon is not reachable ({reason}); start it (as root:"
            " `dockerd &` or `systemctl start docker`) or set DOCKER_HOST"
        )
    return done.stdout.strip()


@dataclass(frozen=True)
class ContainerSpec:
    """What every container of one sandbox shares: image, limits, resources, mounts."""

    docker: str
    image: str
    worker_argv: tuple[str, ...]
    limits: SandboxLimits
    cpus: float
    memory_bytes: int
    python_paths: tuple[str, ...] = ()

    def run_command(self, name: str, uid: int) -> list[str]:
        tmpfs = self.limits.tmpfs_bytes
        cmd = [
            self.docker, "run", "--interactive", "--rm", "--name", name,
            "--pull", "never",  # the image is ours, built here: never look for it in a registry
            "--label", f"{OWNER_LABEL}={os.getpid()}",
            "--network", "none", "--ipc", "private", "--hostname", "sandbox",
            "--read-only",
            "--tmpfs", f"/tmp:rw,exec,nosuid,nodev,size={tmpfs},mode=1777",
            "--shm-size", str(tmpfs),
            "--user", f"{uid}:{uid}", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges",
            # +1: the worker itself is in the container's pids cgroup.
            "--pids-limit", str(self.limits.max_processes + 1),
            "--memory", str(self.memory_bytes), "--memory-swap", str(self.memory_bytes),
            "--cpus", f"{self.cpus:g}",
            "--ulimit", "core=0",
            "--log-driver", "none",  # the frames go through attach, never into a log file
            "--workdir", "/tmp",
        ]  # fmt: skip
        for path in self.python_paths:
            cmd += ["--volume", f"{path}:{path}:ro"]
        return [*cmd, self.image, *self.worker_argv]


class Container(FramedWorker):
    """A running sandbox container. Not thread-safe: one owner thread talks to it (`kill`
    aside, see FramedWorker)."""

    close_wait_s = 5.0

    def __init__(self, spec: ContainerSpec, name: str) -> None:
        self.spec, self.name = spec, name
        self.what = f"the sandbox container {name}"
        stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        try:
            # Only what the docker CLI needs from our environment: no tokens.
            env = {
                k: v
                for k, v in os.environ.items()
                if k in ("PATH", "HOME") or k.startswith("DOCKER_")
            }
            uid = UID_RANGE[0] + secrets.randbelow(UID_RANGE[1] - UID_RANGE[0])
            # Its own process group: Ctrl-C at a terminal is for the host to handle (close()).
            proc = subprocess.Popen(
                spec.run_command(name, uid),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=env,
                process_group=0,
            )  # fmt: skip
        except OSError as exc:
            stderr.close()
            raise InfraError(f"cannot run docker: {exc}") from None
        self._attach(proc, stderr)
        try:
            self.expect_ready(time.monotonic() + STARTUP_TIMEOUT_S)
        except BaseException:
            self.close()
            raise

    def kill(self) -> None:
        """Remove the container at once (killing the docker CLI would leave it running)."""
        remove_containers(self.spec.docker, [self.name])


def remove_containers(docker: str, names: Sequence[str]) -> None:
    if not names:
        return
    try:
        subprocess.run(
            [docker, "rm", "--force", *names],
            capture_output=True, timeout=DOCKER_TIMEOUT_S, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        log.warning("docker rm of %s did not finish in time", ", ".join(names))
