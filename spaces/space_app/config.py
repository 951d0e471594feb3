"""What a Space shows: the recipe's repositories, resolved once, so the app needs no recipe.

`builder space serve` resolves it from a recipe in the same process; `builder space deploy`
writes it into the Space repository as `space.json`, which `app.py` reads. The repositories:

- data stages: every dataset step of the recipe, in recipe order (`<ns>/<recipe>-<step>`);
- model repositories: the recipe's model steps (`<ns>/<recipe>-train` when it has none yet),
  whose branches are the training checkpoints;
- evaluation repositories: the recipe's `eval` steps, and where `builder eval --model` publishes
  by default for the trained model and for the base model (`<ns>/<model name>-eval`), plus
  any given with `--eval-repo`. Those that do not exist are skipped when read.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from builder.errors import BuilderError

CONFIG_FILE = "space.json"


@dataclass(frozen=True)
class StageRef:
    name: str
    kind: str  # dataset | evaluation | model
    repo: str


@dataclass
class SpaceConfig:
    recipe: str  # the recipe's name
    store: str  # "hf" or "local:DIR"
    stages: list[StageRef] = field(default_factory=list)  # every step, in recipe order
    model_repos: list[str] = field(default_factory=list)
    eval_repos: list[str] = field(default_factory=list)
    base_model: str = ""  # the recipe's `model`: a Hub id or a folder
    models: list[str] = field(default_factory=list)  # more models for the chat (ids, folders)
    work_dir: str = ".builder/work"  # where models of a local store are linked into folders
    # The recipe's local corpus folders (published records name them by their last part only),
    # so that a local Space can show an extracted function's file; none on a deployed Space.
    corpora: list[str] = field(default_factory=list)
    # OpenAI-compatible endpoints the owner runs: only these receive the server's key (see
    # chat_guard.py); a visitor may still type another URL, which gets only the visitor's key.
    endpoints: list[str] = field(default_factory=list)
    # ChatLimits' fields to change (message and prompt bounds, seconds, concurrency).
    chat_limits: dict = field(default_factory=dict)

    @property
    def data_stages(self) -> list[StageRef]:
        return [s for s in self.stages if s.kind == "dataset"]

    @property
    def on_hub(self) -> bool:
        return self.store == "hf"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> SpaceConfig:
        data = json.loads(text)
        data["stages"] = [StageRef(**s) for s in data.get("stages", [])]
        config = cls(**data)
        from space_app.chat_guard import ChatLimits

        ChatLimits(**config.chat_limits)  # an unknown limit names itself now, not at the 1st chat
        return config


def load_config(folder: Path) -> SpaceConfig:
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise BuilderError(
            f"no {CONFIG_FILE} in {folder}: deploy with "
            "`builder space deploy RECIPE --to NS/NAME`, "
            "or run `builder space serve RECIPE`"
        )
    return SpaceConfig.from_json(path.read_text())


def config_from_recipe(
    recipe,
    eval_repos: list[str] = (),
    models: list[str] = (),
    store: str | None = None,
    endpoints: list[str] = (),
) -> SpaceConfig:
    """Resolve a recipe's repositories (names only: nothing needs to be published yet).
    `store`: read another store than the recipe's (a deployed Space reads `hf`)."""
    from builder.pipeline.repo_names import namespace_of, repo_for
    from builder.registry import STEPS
    from builder.store import open_store

    if store is not None and store != recipe.hub.store:
        recipe.hub.store = store
    datasets = open_store(recipe.hub.store)
    namespace = namespace_of(recipe, datasets)
    stages = [
        StageRef(name, STEPS.load(name).kind, repo_for(recipe, name, datasets))
        for name in recipe.stage_names()
    ]
    model_repos = [s.repo for s in stages if s.kind == "model"] or [
        f"{namespace}/{recipe.name}-train"
    ]
    candidates = [s.repo for s in stages if s.kind == "evaluation"]
    candidates.append(f"{namespace}/{recipe.name}-eval")  # the eval step's default
    for model in [*model_repos, recipe.model]:  # `builder eval --model M`'s default
        if model:
            candidates.append(f"{namespace}/{Path(model.rstrip('/')).name}-eval")
    candidates += list(eval_repos)
    return SpaceConfig(
        recipe=recipe.name,
        store=datasets.uri,  # a local store's folder made absolute
        stages=stages,
        model_repos=model_repos,
        eval_repos=list(dict.fromkeys(candidates)),
        base_model=recipe.model,
        models=list(models),
        work_dir=recipe.work_dir or ".builder/work",
        corpora=[] if store == "hf" else _local_corpora(recipe),
        endpoints=list(endpoints),
    )


def _local_corpora(recipe) -> list[str]:
    extract = recipe.stages.get("extract")
    source = getattr(extract, "source", "") or ""
    folders = [Path(p).expanduser().resolve() for p in source.split(",") if p.strip()]
    return [str(f) for f in folders if f.is_dir()]
