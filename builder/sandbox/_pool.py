"""What the pooled backends (local, docker, e2b) share: `run` puts each program, as a `Job`, into
one queue; host threads ("slots", each owning one worker: a bwrap sandbox, a container, an E2B
sandbox) take the jobs and set their results.
"""

from __future__ import annotations

import os
import queue
import weakref
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from builder.sandbox._process import InfraError
from builder.sandbox.base import ExecResult, Program, Sandbox, SandboxError


@dataclass
class Job:
    program: Program
    future: Future  # set to its ExecResult by the slot that ran it
    attempts: int = 0  # runs the sandbox itself cut short (backends that retry count them)


class PooledSandbox(Sandbox):
    """A sandbox whose slots take programs from `self._jobs`.

    A subclass's `__init__` creates `_jobs` and its slots, and sets `_finalizer` (a
    `weakref.finalize` that stops the slots and their workers, so that they also go on garbage
    collection or at exit when `close()` is never called).
    """

    _jobs: queue.SimpleQueue
    _finalizer: weakref.finalize
    _closed = False

    def run(self, programs: Sequence[Program]) -> list[ExecResult]:
        if self._closed:
            raise SandboxError("this sandbox is closed")
        jobs = [Job(program, Future()) for program in programs]
        for job in jobs:
            self._jobs.put(job)
        return [job.future.result() for job in jobs]

    def close(self) -> None:
        self._closed = True
        self._finalizer()

    def _wait_until_started(self, slots: Sequence, hint: str = "") -> None:
        """Wait for every slot's first worker (each slot sets its `started` future). A setup that
        cannot work closes the sandbox and fails as a one-line SandboxError."""
        try:
            for slot in slots:
                slot.started.result()
        except BaseException as exc:
            self.close()
            if not isinstance(exc, InfraError):
                raise
            reason = " ".join(str(exc).split())  # one line, whatever the tool printed
            raise SandboxError(f"the {self.name} sandbox cannot start: {reason}{hint}") from None


def checked_python_paths(python_paths: Sequence[str]) -> tuple[str, ...]:
    """The extra import directories, resolved; a SandboxError names one that is not a directory."""
    resolved = tuple(os.path.realpath(p) for p in python_paths)
    for path in resolved:
        if not os.path.isdir(path):
            raise SandboxError(f"python path {path} is not a directory")
    return resolved
