"""What a step can open as its input, pinned: another step's output in the recipe's store, or
any dataset repository of that store. Steps ask through `Inputs` (their `open_input`), so that
they never hold the store themselves."""

from __future__ import annotations

from pathlib import Path

from builder.errors import RepoNotFound, StageError, StoreError
from builder.pipeline.input_sources import ModelInput, StoreInput
from builder.pipeline.publish import MANIFEST
from builder.pipeline.recipe import Recipe
from builder.pipeline.repo_names import repo_for
from builder.store import Store, open_store, split_ref

# A training checkpoint's optimizer and trainer state: for resuming, not for a model loader.
RESUME_ONLY = "training_state/"


class Inputs:
    def __init__(self, recipe: Recipe, name: str, store: Store):
        self.recipe = recipe
        self.name = name  # the step that asks
        self.store = store  # the recipe's dataset store

    def input_spec(self) -> str | None:
        """The step's `input` key, else the previous step of the recipe ("stage[@revision]")."""
        return self.recipe.input_stage(self.name)

    def previous_stage(self) -> StoreInput:
        spec = self.input_spec()
        if spec is None:
            raise StageError(
                f"stage '{self.name}' is first in {self.recipe.path} but reads another stage"
            )
        return self.stage(spec)

    def stage_repo(self, stage: str) -> str:
        return repo_for(self.recipe, stage, self.store)

    def stage(self, spec: str) -> StoreInput:
        """The output of the recipe's step named in `spec` (`stage` or `stage@revision`)."""
        stage, revision = split_ref(spec)
        repo = self.stage_repo(stage)
        try:
            return StoreInput(self.store, repo, revision)
        except RepoNotFound:
            raise StageError(
                f"stage '{self.name}' reads stage '{stage}', which is not published in "
                f"{self.store.uri} ({repo}); run it first"
            ) from None

    def dataset(self, repo: str, revision: str = "main", split: str = "train") -> StoreInput:
        """Any dataset repository of the store, pinned."""
        return StoreInput(self.store, repo, revision, split)

    def models(self) -> Store:
        """The store's model repositories."""
        return open_store(self.store.uri, "model")

    def model_of(self, spec: str) -> ModelInput:
        """The model a step of the recipe published (`stage` or `stage@revision`), pinned, with
        its files in a local folder under the work directory."""
        stage, revision = split_ref(spec)
        repo = self.stage_repo(stage)
        try:
            return self.model_repo(repo, revision)
        except RepoNotFound:
            raise StageError(
                f"stage '{self.name}' reads the model of stage '{stage}', which is not "
                f"published in {self.store.uri} ({repo}); run it first"
            ) from None

    def has_model(self, name: str) -> bool:
        """Whether `name` is a model repository of a local store (on the Hub, a model of the
        store is opened by its id like any Hub model)."""
        if self.store.uri == "hf" or "/" not in name or Path(name).expanduser().exists():
            return False
        try:
            return self.models().repo_exists(name)
        except StoreError:  # not a valid repository id
            return False

    def model_repo(self, repo: str, revision: str = "main") -> ModelInput:
        """A model repository of the store at `revision` (a branch such as a training
        checkpoint's, a tag or a commit), pinned, its files in a folder under the work
        directory. The ModelInput's `branch` is the revision as asked."""
        models = self.models()
        commit = models.resolve(repo, revision)
        folder = Path(self.recipe.work_dir or ".builder/work").expanduser() / "models"
        folder = materialize(models, repo, commit, folder / repo.replace("/", "--") / commit)
        return ModelInput(repo, weights_commit(models, repo, commit), str(folder), branch=revision)


def weights_commit(store: Store, repo: str, commit: str) -> str:
    """The commit that published the model `commit` holds: the oldest of its ancestors with the
    same manifest. Later commits that only rewrote the card (an evaluation's model-index) pin
    the same weights, so that they do not make the evaluation of those weights stale."""
    manifest = store.read_text(repo, commit, MANIFEST)
    if manifest is None:
        return commit
    pinned = commit
    for entry in store.log(repo, commit)[1:]:
        if store.read_text(repo, entry.id, MANIFEST) != manifest:
            break
        pinned = entry.id
    return pinned


def materialize(store: Store, repo: str, commit: str, folder: Path) -> Path:
    """A folder holding the files of `repo@commit`, as a model loader expects them (links to
    the store's copies; made once per commit)."""
    done = folder / ".complete"
    if done.exists():
        return folder
    files = [
        f
        for f in store.list_files(repo, commit)
        if f != ".gitattributes" and not f.startswith(RESUME_ONLY)
    ]
    for name, local in store.fetch(repo, commit, files).items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        target.symlink_to(Path(local).resolve())
    done.touch()
    return folder
