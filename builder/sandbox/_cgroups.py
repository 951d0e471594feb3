"""cgroup v1 groups for one local sandbox, seen from the host: `pids` and `memory`.

- `pids` caps the sandbox's processes and threads. Needed when the host user is root: the
  kernel exempts uid 0 from RLIMIT_NPROC, even inside a user namespace, and the sandbox user
  maps to the host user. Elsewhere RLIMIT_NPROC works, and no group is made.
- `memory` caps the sum of what the sandbox holds (every process, its tmpfs pages): RLIMIT_AS
  bounds each process alone, so a program that forks could otherwise hold N times the limit.
  Its size is the docker backend's container memory (the program's limit, both tmpfs at full
  size, room for the worker), swap included where the kernel accounts it. It needs a writable
  memory hierarchy (root on a cgroup v1 host); elsewhere the worker's resident-memory guard is
  the only bound on the sum (see `_worker.py`).

Each group is made under this process's own group of that hierarchy (so that the limits of a
container we run in still apply) and named `builder-sandbox-<host pid>-...`: a run killed with
-9 leaves its groups behind, and the next sandbox removes those whose process is gone.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
PREFIX = "builder-sandbox-"


def own_group(controller: str) -> Path | None:
    """This process's group in the v1 hierarchy of `controller`, if it is mounted."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            group = CGROUP_ROOT / controller / path.lstrip("/")
            return group if group.is_dir() else None
    return None


def _writable(group: Path | None) -> bool:
    return group is not None and os.access(group / "cgroup.procs", os.W_OK)


class SandboxCgroups:
    """The groups one sandbox worker (and all it forks) is put into; none where not possible."""

    def __init__(self, groups: dict[str, Path]) -> None:
        self.groups = groups  # controller -> the group made in its hierarchy

    @classmethod
    def create(cls, name: str, max_pids: int, memory_bytes: int | None) -> SandboxCgroups:
        made: dict[str, Path] = {}
        wanted = []
        if os.geteuid() == 0:
            wanted.append(("pids", {"pids.max": max_pids}))
        if memory_bytes:
            limits = {"memory.limit_in_bytes": memory_bytes}
            limits["memory.memsw.limit_in_bytes"] = memory_bytes  # no swap beyond it (if there)
            wanted.append(("memory", limits))
        for controller, limits in wanted:
            parent = own_group(controller)
            if not _writable(parent):
                continue
            remove_stale(parent)
            group = parent / name
            try:
                group.mkdir()
                made[controller] = group
                for file, value in limits.items():
                    if (group / file).exists():
                        (group / file).write_text(str(value))
            except OSError as exc:
                log.warning("cannot set up %s cgroup %s: %s", controller, group, exc)
        return cls(made)

    def add(self, pid: int) -> None:
        for group in self.groups.values():
            (group / "cgroup.procs").write_text(str(pid))

    def remove(self) -> None:
        for group in self.groups.values():
            _rmdir(group)


def _rmdir(group: Path) -> bool:
    for _ in range(50):  # the last tasks may take a moment to leave after being killed
        try:
            group.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError:
            time.sleep(0.02)
    log.warning("could not remove cgroup %s", group)
    return False


def remove_stale(parent: Path) -> int:
    """Remove the groups under `parent` that a sandbox of a process now gone left behind
    (killed with -9: nothing ran its cleanup). Returns how many were removed."""
    removed = 0
    for group in parent.glob(f"{PREFIX}*"):
        owner = group.name[len(PREFIX) :].split("-", 1)[0]
        if not owner.isdigit() or _alive(int(owner)):
            continue
        try:
            if (group / "cgroup.procs").read_text().strip():
                continue  # something still runs in it: not ours to judge
        except OSError:
            continue
        try:
            group.rmdir()
            removed += 1
        except OSError:
            continue
    if removed:
        log.info("removed %d cgroups left by sandboxes of ended processes in %s", removed, parent)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
