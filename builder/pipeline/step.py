"""What a step is: anything a recipe can run.

A step pins its input (`open_input`), has a fingerprint (its name, version, parameters, the
settings in `fingerprint_extra` and the pinned input), runs into an output folder, and says what
kind of repository it publishes (`kind`: a dataset, a model, evaluation results) and what its
card says. A step never talks to the store: the runner (`runner.py`) pins its input, runs it
and hands the folder to the publisher (`publish.py`).

Row stages (`rows.py`: rows in, kept and dropped rows out) are the common kind; training and
evaluation are others. Each step declares the resources one of its workers needs
(`resources()`), which an executor uses to place its work (`executors/`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from builder.errors import StageError

if TYPE_CHECKING:
    from builder.pipeline.inputs import InputSource

# What a step publishes: the repository type it goes to, and the `kind` in its manifest.
KINDS = {"dataset": "dataset", "evaluation": "dataset", "model": "model"}


def runtime_only(default: Any, **bounds: float) -> Any:
    """A parameter that changes how a step runs but not what it outputs (left out of its
    fingerprint, so changing it does not make a published revision stale)."""
    return bounded(default, runtime=True, **bounds)


def bounded(
    default: Any,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    runtime: bool = False,
) -> Any:
    """A numeric parameter with its valid range, checked when the recipe loads (None: no
    bound; a value of None is always allowed where the type allows it)."""
    metadata: dict[str, Any] = {"bounds": (ge, gt, le)}
    if runtime:
        metadata["fingerprint"] = False
    return field(default=default, metadata=metadata)


def _bounds(cls: type, name: str) -> tuple:
    """A field's bounds, as declared by the class or by the base class that introduced it (a
    subclass that only changes a default keeps them)."""
    for klass in cls.__mro__:
        fields = getattr(klass, "__dataclass_fields__", {})
        if name in fields and "bounds" in fields[name].metadata:
            return fields[name].metadata["bounds"]
    return (None, None, None)


def out_of_range(obj: Any) -> list[tuple[str, str]]:
    """(field, problem) for each numeric field of dataclass `obj` that is not finite or is
    outside its declared bounds."""
    problems = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not math.isfinite(value):
            problems.append((f.name, f"must be a finite number, got {value}"))
            continue
        ge, gt, le = _bounds(type(obj), f.name)
        if ge is not None and value < ge:
            problems.append((f.name, f"must be >= {ge}, got {value}"))
        elif gt is not None and value <= gt:
            problems.append((f.name, f"must be > {gt}, got {value}"))
        elif le is not None and value > le:
            problems.append((f.name, f"must be <= {le}, got {value}"))
    return problems


@dataclass
class StepParams:
    """Keys every step has: which step it reads, and a row limit for dry runs."""

    input: str | None = runtime_only(None)  # its effect is already in the input revision
    limit: int | None = bounded(None, ge=0)  # the first rows (or tasks) only: dry runs
    # Row stages: input rows per checkpointed chunk (None: the stage's own default). How the
    # work is cut, not what it outputs: the most a crash can lose, the unit an executor spreads.
    chunk_size: int | None = runtime_only(None, ge=1)

    def input_stage_name(self) -> str | None:
        """The recipe stage that `input` names (`stage` or `stage@revision`); None when it is
        unset (the previous stage) or, for steps that read other things, names no stage."""
        return (self.input or "").partition("@")[0] or None

    def fingerprint_items(self) -> dict[str, Any]:
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.metadata.get("fingerprint", True)
        }


@dataclass(frozen=True)
class StepContext:
    """Recipe-level settings a step may need besides its own parameters (picklable: it travels
    to workers with the step)."""

    recipe_name: str = ""
    model: str = ""
    engine: Any = None  # recipe.EngineConfig
    sandbox: Any = None  # recipe.SandboxConfig
    work_dir: str = ".builder/work"
    store: str = ""  # the recipe's store URI, for steps that name repositories of it
    namespace: str = ""  # where the recipe's repositories are


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


@dataclass
class StepRun:
    """What the runner gives a step to run: its pinned input, a folder for its output, a work
    folder that survives a crash (its checkpoints), the executor for its chunks, and, for steps
    that publish while they run (a training checkpoint), a way to publish a revision."""

    source: "InputSource | None"
    output: Path
    work: Path
    executor: Any = None  # executors.base.Executor
    # Revisions on branches other than main, published while running (runner.BranchRevisions).
    revisions: Any = None


def _without_paths(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_paths(v) for v in value]
    if isinstance(value, str) and value.startswith(("/", "~")):
        return Path(value).name
    return value


@dataclass(frozen=True)
class CardUpdate:
    repo_type: str  # dataset or model
    repo: str
    transform: Callable[[str], str]  # old card -> new card
    title: str  # the commit's title
    branch: str = "main"  # e.g. a training checkpoint's branch


class Step:
    name: ClassVar[str]
    params_class: ClassVar[type[StepParams]] = StepParams
    kind: ClassVar[str] = "dataset"  # dataset | model | evaluation (see KINDS)
    # Bump when the output changes for the same input and parameters.
    version: ClassVar[int] = 1
    description: ClassVar[str] = ""
    implemented: ClassVar[bool] = True
    reads: tuple[str, ...] = ()  # input columns it needs, checked before any work

    def __init__(self, params: StepParams, context: StepContext | None = None):
        self.params = params
        self.context = context or StepContext()
        if params.chunk_size is not None and not hasattr(type(self), "chunk_size"):
            raise StageError(f"stages.{self.name}.chunk_size: '{self.name}' has no chunks")
        self._resources: WorkerResources | None = None
        self._owns_resources = False

    # -- what the runner asks before any work ----------------------------------------------

    def open_input(self, inputs: Any) -> "InputSource | None":
        """The step's input, pinned. `inputs` (runner.Inputs) opens the recipe's stages and
        store repositories; the default reads the previous stage (or the `input` key)."""
        return inputs.previous_stage()

    def fingerprint_extra(self) -> dict[str, Any]:
        """What else, besides its parameters and input, decides this step's output (e.g. the
        model that generates, or the sandbox settings that judge). Goes into the fingerprint."""
        return {}

    def resources(self) -> Resources:
        return Resources()

    def published_params(self) -> dict[str, Any]:
        """The parameters as the manifest and card show them: a local path by its last part
        only (where the user keeps files is nobody else's business)."""
        return _without_paths(dataclasses.asdict(self.params))

    def repo_name(self) -> str | None:
        """The repository it publishes to, if not `<namespace>/<recipe>-<step>`."""
        return None

    # -- running ---------------------------------------------------------------------------

    def run(self, job: StepRun) -> dict[str, Any]:
        """Write the output into `job.output`; returns the manifest's step-specific facts."""
        raise NotImplementedError

    def card(self, manifest: dict[str, Any]) -> str:
        """The repository card (README.md) for a published revision."""
        raise NotImplementedError

    def commit_title(self, manifest: dict[str, Any], source: str) -> str:
        return f"{self.name}: from {source}"

    def summary(self, manifest: dict[str, Any]) -> str:
        """One line for the log once published."""
        return self.kind

    def card_updates(self, manifest: dict[str, Any]) -> list["CardUpdate"]:
        """Cards of other repositories to update once this revision is published (e.g. an
        evaluation's scores in the evaluated model's `model-index`)."""
        return []

    # -- resources a worker owns for its lifetime --------------------------------------------

    @property
    def worker_resources(self) -> WorkerResources:
        """Its worker's resources; a private set when it runs outside a worker (tests)."""
        if self._resources is None:
            self._resources, self._owns_resources = WorkerResources(), True
        return self._resources

    def attach(self, resources: WorkerResources) -> None:
        """Called by the worker that runs this step: share the worker's resources."""
        self._resources, self._owns_resources = resources, False

    def close(self) -> None:
        """Release what the step opened for itself (resources a worker owns stay open)."""
        if self._owns_resources and self._resources is not None:
            self._resources.close()
            self._resources = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.update(_resources=None, _owns_resources=False)  # never travels to a worker
        return state
