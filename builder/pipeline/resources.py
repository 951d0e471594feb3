"""What a step's workers need and hold: `Resources` (how many workers, and what each needs, for
an executor to place them) and `WorkerResources` (the heavy objects a worker keeps for its
lifetime: an engine, a Pyright server, a sandbox pool)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Resources:
    """What one worker of a step needs, and how many workers it wants.

    The local executor uses `workers` (processes on this machine; 1 runs in the driver's
    process). A cluster executor places each worker by `cpus`, `gpus` and `memory_mb` and starts
    as many as the cluster has room for, at most `max_workers` (None: no limit; e.g. 1 for a
    client of one remote server). A recipe can override any of these per step
    (`executor.resources.<step>`)."""

    workers: int = 1
    cpus: float = 1.0
    gpus: float = 0.0
    memory_mb: int | None = None
    max_workers: int | None = None


class WorkerResources:
    """The heavy objects a worker keeps for its lifetime (an engine, a Pyright server, a sandbox
    pool), by key, closed together when the worker ends.

    A `group` holds at most one object: opening a second engine closes the first (one model in
    memory at a time). An object got with `shared=True` outlives the step that opened it
    (`end_step`), so that the generation steps of a run load their model once, not four times.
    """

    def __init__(
        self,
        cpus: int | None = None,
        on_driver: Callable[[Callable[[str], Any], str], Any] | None = None,
    ) -> None:
        self._objects: dict[Any, Any] = {}
        self._groups: dict[Any, str | None] = {}
        self._shared: set[Any] = set()
        # The CPUs an executor granted this worker (None: the machine is its own), for steps
        # that size a pool of their own (a sandbox's slots) to what they were given.
        self.cpus = cpus
        self._on_driver = on_driver

    def open_on_driver(self, factory: Callable[[str], Any], path: str) -> Any:
        """`factory(path)` for a file that only one machine may open at a time (SQLite in WAL
        mode needs memory shared by its readers and writers: no network filesystem). Here when
        the worker runs on the driver's machine; on a cluster, a proxy to the one instance on the
        driver's machine, with the same methods (its `close` leaves that instance open)."""
        if self._on_driver is None:
            return factory(path)
        return self._on_driver(factory, path)

    def get(
        self, key: Any, factory: Callable[[], Any], group: str | None = None, shared: bool = False
    ) -> Any:
        if key not in self._objects:
            if group is not None:
                for other in [k for k, g in self._groups.items() if g == group]:
                    self.release(other)
            self._objects[key] = factory()
            self._groups[key] = group
            if shared:
                self._shared.add(key)
        return self._objects[key]

    def release(self, key: Any) -> None:
        self._groups.pop(key, None)
        self._shared.discard(key)
        thing = self._objects.pop(key, None)
        if thing is not None and hasattr(thing, "close"):
            thing.close()

    def end_step(self) -> None:
        """Release what only the finished step needed."""
        for key in [k for k in self._objects if k not in self._shared]:
            self.release(key)

    def close(self) -> None:
        for key in list(self._objects):
            self.release(key)
