"""What a step is: anything a recipe can run.

A step pins its input (`open_input`), has a fingerprint (its name, version, parameters, the
settings in `fingerprint_extra` and the pinned input), runs into an output folder, and says what
kind of repository it publishes (`kind`: a dataset, a model, evaluation results) and what its
card says. A step never talks to the store: the runner (`step_runner.py`) pins its input, runs it
and hands the folder to the publisher (`publish.py`).

Row stages (`rows.py`: rows in, kept and dropped rows out) are the common kind; training and
evaluation are others. Each step declares the resources one of its workers needs
(`resources()`), which an executor uses to place its work (`executors/`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Protocol

from builder.config.fields import bounded, runtime_only
from builder.engines.config import EngineConfig
from builder.errors import StageError
from builder.pipeline.executors.base import Executor
from builder.pipeline.input_sources import InputSource, ModelInput, StoreInput
from builder.pipeline.resources import Resources, WorkerResources
from builder.sandbox.config import SandboxConfig
from builder.store import Store

# What a step publishes: the repository type it goes to, and the `kind` in its manifest.
KINDS = {"dataset": "dataset", "evaluation": "dataset", "model": "model"}


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
        items = {}
        for f in dataclasses.fields(self):
            value, kind = getattr(self, f.name), f.metadata.get("fingerprint", True)
            if kind is False or (kind == "unless_default" and value == f.default):
                continue
            items[f.name] = value
        return items


@dataclass(frozen=True)
class StepContext:
    """Recipe-level settings a step may need besides its own parameters (picklable: it travels
    to workers with the step)."""

    recipe_name: str = ""
    model: str = ""
    model_origin: str | None = None  # recipe.model_origin
    prompting: str = "completion"  # recipe.prompting: completion | chat
    engine: EngineConfig = dataclasses.field(default_factory=EngineConfig)
    sandbox: SandboxConfig = dataclasses.field(default_factory=SandboxConfig)
    work_dir: str = ".builder/work"
    store: str = ""  # the recipe's store URI, for steps that name repositories of it
    namespace: str = ""  # where the recipe's repositories are


class InputOpener(Protocol):
    """How a step opens its input, pinned (`input_opener.Inputs`)."""

    def previous_stage(self) -> StoreInput: ...

    def stage(self, spec: str) -> StoreInput: ...

    def dataset(self, repo: str, revision: str = "main", split: str = "train") -> StoreInput: ...

    def models(self) -> Store: ...

    def model_of(self, spec: str) -> ModelInput: ...

    def has_model(self, name: str) -> bool: ...

    def model_repo(self, repo: str, revision: str = "main") -> ModelInput: ...


class Revisions(Protocol):
    """What a step that publishes while it runs may do with its repository (the runner's
    `BranchRevisions`): publish a folder on a branch, list its branches published with this
    fingerprint, fetch one back."""

    def publish(self, folder: Path, branch: str, facts: dict, title: str) -> str: ...

    def published(self, prefix: str) -> dict[str, tuple[str, dict]]: ...

    def fetch(self, commit: str) -> dict[str, Path]: ...


@dataclass
class StepRun:
    """What the runner gives a step to run: its pinned input, a folder for its output, a work
    folder that survives a crash (its checkpoints), the executor for its chunks, and, for steps
    that publish while they run (a training checkpoint), a way to publish a revision."""

    source: InputSource | None
    output: Path
    work: Path
    executor: Executor | None = None  # row stages: where their chunks run
    # Revisions on branches other than main, published while running (model steps).
    revisions: Revisions | None = None


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
    # Row stages: input rows per checkpointed chunk (None: a step that has no chunks).
    chunk_size: int | None = None

    def __init__(self, params: StepParams, context: StepContext | None = None):
        self.params = params
        self.context = context or StepContext()
        if params.chunk_size is not None and type(self).chunk_size is None:
            raise StageError(f"stages.{self.name}.chunk_size: '{self.name}' has no chunks")
        self._resources: WorkerResources | None = None
        self._owns_resources = False

    # -- what the runner asks before any work ----------------------------------------------

    def rows_follow(self) -> str | None:
        """The recipe step whose rows this step's output count follows, when it is not its own
        input's (one row per task: `select`'s follow the instructions, not the samples);
        `builder plan` scales by it. None: its own input."""
        return None

    def open_input(self, inputs: InputOpener) -> InputSource | None:
        """The step's input, pinned. `inputs` (`input_opener.Inputs`) opens the recipe's stages
        and store repositories; the default reads the previous stage (or the `input` key)."""
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
