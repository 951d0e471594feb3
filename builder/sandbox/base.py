"""The sandbox interface: run a batch of untrusted programs, get one verdict per program.

A program is Python source that carries its own tests (solution + asserts). Its verdict:

- ``pass``: it ran to its end in the original process and exited 0 (early exits never pass);
- ``fail``: it raised (an AssertionError, any uncaught exception, SystemExit at any point),
  exited or was killed before its end, or broke a limit (memory, output, processes);
- ``error``: it could not run at all (SyntaxError and other compile errors);
- ``timeout``: it exceeded the wall-clock (or CPU time) limit;
- ``infra_error``: the sandbox itself failed (missing tool, a worker that died for reasons not
  caused by the program). Never a verdict on the program: callers retry or skip it.
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import inspect
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self

from builder.errors import SandboxError

Status = Literal["pass", "fail", "timeout", "error", "infra_error"]
STATUSES: tuple[str, ...] = ("pass", "fail", "timeout", "error", "infra_error")

GiB = 1 << 30
MiB = 1 << 20
KiB = 1 << 10


@dataclass(frozen=True)
class Program:
    id: str
    code: str


@dataclass
class ExecResult:
    id: str
    status: Status
    duration_s: float = 0.0
    stdout: str = ""  # truncated to SandboxLimits.keep_output_bytes (UTF-8, bad bytes replaced)
    stderr: str = ""
    exit_code: int | None = None  # negative: killed by that signal; None: never ran / unknown
    error: str = ""  # one short line saying why it did not pass

    @property
    def passed(self) -> bool:
        return self.status == "pass"


@dataclass(frozen=True)
class SandboxLimits:
    """Per-program limits. Every field can change a result, so all go into the fingerprint."""

    timeout_s: float = 10.0  # wall clock, from start to the end of the program
    cpu_time_s: int = 10  # per process (RLIMIT_CPU)
    memory_bytes: int = 4 * GiB  # address space per process (RLIMIT_AS)
    max_processes: int = 64  # processes + threads of the program at once
    max_file_size: int = 64 * MiB  # largest file a program may write (RLIMIT_FSIZE)
    max_open_files: int = 256  # RLIMIT_NOFILE
    max_output_bytes: int = 1 * MiB  # per stream; more and the program is killed and fails
    keep_output_bytes: int = 16 * KiB  # per stream kept in ExecResult.stdout / .stderr
    tmpfs_bytes: int = 256 * MiB  # size of the private /tmp (and of /dev/shm)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not (math.isfinite(value) and value > 0):  # nan and inf too
                raise SandboxError(
                    f"sandbox limit {f.name} must be a positive number, got {value!r}"
                )

    @classmethod
    def for_timeout(cls, timeout_s: float, **others: Any) -> SandboxLimits:
        """Limits for a wall-clock timeout, with a CPU time limit just above it."""
        if not (math.isfinite(timeout_s) and timeout_s > 0):
            raise SandboxError(
                f"the sandbox timeout must be a positive number of seconds, got {timeout_s!r}"
            )
        return cls(timeout_s=timeout_s, cpu_time_s=max(1, int(timeout_s) + 1), **others)


# The version of the harness the backends share (`_worker.py`, `_child.py`): bump when a change
# to it can change a verdict.
HARNESS_VERSION = 1
# Constructor arguments that the steps set from their own settings, never a recipe's options.
_STEP_ARGUMENTS = ("self", "limits", "workers")


class Sandbox(abc.ABC):
    """Runs programs in isolation. Use as a context manager, or call `close()`."""

    name: str = "abstract"
    # What can change a verdict besides the settings: in every verdict's settings and in the
    # fingerprint of the steps that run programs. A backend with a harness of its own has its own.
    harness_version: ClassVar[int] = HARNESS_VERSION
    # Whether programs run on the host's Python and may be given host folders to import from
    # (`python_paths`, bound read-only); a remote sandbox has its own Python and cannot.
    binds_host_python: ClassVar[bool] = False

    @classmethod
    def check_options(cls, options: dict[str, Any], where: str = "sandbox.options") -> None:
        """A recipe's options for this backend are its constructor's keyword arguments (the
        limits and worker count come from the step); anything else is a one-line error."""
        accepted = [
            name for name, p in inspect.signature(cls.__init__).parameters.items()
            if name not in _STEP_ARGUMENTS and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]  # fmt: skip
        for key in options:
            if key not in accepted:
                raise SandboxError(
                    f"{where}.{key}: not an option of the {cls.name} sandbox "
                    f"(its options: {', '.join(accepted) or 'none'})"
                )

    def __init__(self, limits: SandboxLimits | None = None) -> None:
        self.limits = limits or SandboxLimits()

    @abc.abstractmethod
    def run(self, programs: Sequence[Program]) -> list[ExecResult]:
        """Run every program; one result per program, in input order."""

    def run_iter(self, programs: Sequence[Program]) -> Iterator[ExecResult]:
        """Run every program; each result as soon as its program is done, in any order (a result
        carries its program's id). A caller interrupted while it waits (Ctrl-C) keeps every
        result it got; `close()` then ends the rest."""
        yield from self.run(programs)

    def close(self) -> None:
        """Release workers and every process the sandbox started."""

    def settings(self) -> dict[str, Any]:
        """Everything that can change a verdict (backends add theirs, e.g. the interpreter)."""
        return {"backend": self.name, "limits": dataclasses.asdict(self.limits)}

    def settings_fingerprint(self) -> str:
        """A stable short string for `settings()`, for result cache keys."""
        canonical = json.dumps(self.settings(), sort_keys=True, separators=(",", ":"))
        return f"{self.name}-{hashlib.sha256(canonical.encode()).hexdigest()[:16]}"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def sandbox_memory(limits: SandboxLimits) -> int:
    """What one sandbox may hold in all (a docker container's memory, a local sandbox's memory
    cgroup): the program's limit, both tmpfs at full size, and room for the worker."""
    return limits.memory_bytes + 2 * limits.tmpfs_bytes + 256 * MiB
