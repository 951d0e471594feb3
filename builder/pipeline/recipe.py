"""Recipes: one YAML file per pipeline, loaded into dataclasses with strict keys.

A recipe names the pipeline (`name`, the prefix of every dataset repo), where it publishes
(`hub`), the model, engine and sandbox, and its stages in order. Every key is checked: an unknown
key fails with its dotted path and the file name, and so does a value of the wrong type.
`--set dotted.key=value` overrides any key; values are parsed as YAML scalars.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from builder.config.fields import bounded, build, is_mapping, mapping_values
from builder.config.yaml_file import check_size, read_recipe_yaml
from builder.engines.config import EngineConfig
from builder.errors import RecipeError
from builder.pipeline.executors.config import ExecutorConfig
from builder.pipeline.step import StepParams
from builder.registry import STEPS
from builder.sandbox.config import SandboxConfig


@dataclass
class HubConfig:
    store: str = "local:.builder/store"  # "hf" or "local:DIR" (relative to the working directory)
    namespace: str | None = None  # user or org; None: "local" offline, the token's user on the Hub
    private: bool = True


@dataclass
class Recipe:
    name: str
    model: str = ""  # a Hub id, a local folder, or a .gguf file (converted once, see engines/gguf)
    # The Hub id of the model a GGUF `model` was made from, for the cards' lineage, where the
    # file's own metadata has no Hub address; not used to load anything.
    model_origin: str | None = None
    # How the generation steps and `eval` prompt the model: `completion` (few-shot text that a
    # base model continues, the published run's way) or `chat` (the tokenizer's own chat
    # template, worked examples as earlier turns: for instruct models).
    prompting: Literal["completion", "chat"] = "completion"
    # A row step that keeps less than this share of its rows out is warned about (one that
    # keeps none stops the run, whatever this says).
    keep_warning: float = bounded(0.01, ge=0, le=1)
    # False: a step that keeps none of its rows is only warned about and the run goes on (dry
    # runs of the plumbing with a random model, `builder tiny-model --random`, keep nothing).
    stop_when_empty: bool = True
    hub: HubConfig = field(default_factory=HubConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    # Where unfinished stage work is checkpointed; None: `.builder/work` in the working directory.
    work_dir: str | None = None
    stages: dict[str, StepParams] = field(default_factory=dict)
    path: str = ""  # the file it was loaded from; not a recipe key

    def stage_names(self) -> list[str]:
        return list(self.stages)

    def input_stage(self, stage: str) -> str | None:
        """The stage whose output `stage` reads: its `input` key, else the previous stage."""
        explicit = self.stages[stage].input
        if explicit is not None:
            return explicit
        names = self.stage_names()
        index = names.index(stage)
        return names[index - 1] if index > 0 else None

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("path")
        return data

    def fingerprint(self) -> str:
        """A hash of everything the recipe says but where it runs, for the cards."""
        data = self.to_dict()
        data.pop("executor")
        text = json.dumps(data, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read a recipe file, apply `--set` overrides, and check every key and type."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe not found: {path}")
    raw = read_recipe_yaml(path)
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: a recipe must be a mapping of keys to values")
    for override in overrides:
        _apply_override(raw, override, path)
    check_size(raw, path)
    stages = {"stages": lambda value: _build_stages(value, path)}
    recipe = build(Recipe, raw, "", path, special=stages, skip=("path",))
    recipe.path = str(path)
    for name, params in recipe.stages.items():
        input_stage = params.input_stage_name()
        if input_stage is not None and input_stage not in recipe.stages:
            raise RecipeError(f"{path}: stages.{name}.input names unknown stage '{input_stage}'")
    for name in recipe.executor.resources:
        if name not in recipe.stages:
            raise RecipeError(f"{path}: executor.resources names unknown stage '{name}'")
    return recipe


def _apply_override(raw: dict, override: str, path: Path) -> None:
    key, sep, text = override.partition("=")
    if not sep or not key:
        raise RecipeError(f"--set expects dotted.key=value, got '{override}'")
    _check_key(key, path)
    parts = key.split(".")
    if parts[0] == "stages" and len(parts) > 2 and parts[1] not in (raw.get("stages") or {}):
        raise RecipeError(f"--set {key}: the recipe {path} has no stage '{parts[1]}'")
    try:
        value = yaml.safe_load(text) if text else ""
    except yaml.YAMLError:
        value = text
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise RecipeError(f"--set {key}: '{part}' is not a mapping in {path}")
        node = child
    node[parts[-1]] = value


def _check_key(key: str, path: Path) -> None:
    """Fail on an unknown `--set` key with its own message (it is not in the file)."""
    parts = key.split(".")
    node: Any = Recipe
    for index, part in enumerate(parts):
        dotted = ".".join(parts[: index + 1])
        if node == "stages":  # the level below `stages` is a stage name
            if part not in STEPS:
                raise RecipeError(f"--set {key}: unknown stage '{dotted}'")
            node = STEPS.load(part).params_class
            continue
        if is_mapping(node):
            values = mapping_values(node)
            if not dataclasses.is_dataclass(values):
                return  # a free-form mapping (e.g. TRL's options): its class checks it
            node = values  # a mapping of settings (e.g. per step): this part is its key
            continue
        if not dataclasses.is_dataclass(node):
            raise RecipeError(f"--set {key}: '{dotted}' is not a mapping (recipe {path})")
        names = {f.name for f in dataclasses.fields(node)} - {"path"}
        if part not in names:
            raise RecipeError(f"--set {key}: unknown key '{dotted}' (recipe {path})")
        node = (
            "stages" if node is Recipe and part == "stages" else typing.get_type_hints(node)[part]
        )


def _build_stages(data: Any, path: Path) -> dict[str, StepParams]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: stages must be a mapping of stage name to settings")
    stages = {}
    for name, settings in data.items():
        if name not in STEPS:
            raise RecipeError(f"{path}: unknown stage 'stages.{name}'")
        params_class = STEPS.load(name).params_class
        stages[name] = build(params_class, settings, f"stages.{name}.", path)
    return stages


