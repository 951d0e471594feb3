"""The Space's read-only view of the store: heads, manifests, histories and open splits.

What a commit holds never changes, so manifests and open splits are cached by commit id (splits
in a small LRU, since each keeps its shards' footers and file handles open). A branch's head is
asked again after `HEAD_TTL_S`, so a stage published while the Space runs shows up.

It opens only the recipe's repositories (its stages, model and evaluation repositories) and
the inputs their manifests pin (a corpus in the store, a dataset of another recipe), whatever a
caller of the API names: the store may hold private repositories of its owner's.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from builder.errors import BuilderError, RepoNotFound
from builder.pipeline.publish import read_manifest
from builder.store import CommitInfo, open_store
from space_app.config import SpaceConfig, StageRef
from space_app.pages import SplitPages

HEAD_TTL_S = 20.0
OPEN_SPLITS = 16


class NotPublished(BuilderError):
    """A stage or repository the recipe names that the store does not hold (yet)."""


class NotServed(BuilderError):
    """A repository this Space does not show, whatever a caller asks."""


class Catalog:
    def __init__(self, config: SpaceConfig):
        self.config = config
        self._served = {s.repo for s in config.stages} | set(config.model_repos)
        self._served |= set(config.eval_repos)
        self.stores = {kind: open_store(config.store, kind) for kind in ("dataset", "model")}
        self._lock = threading.Lock()
        self._heads: dict[tuple[str, str, str], tuple[float, str | None]] = {}
        self._manifests: dict[tuple[str, str, str], dict | None] = {}
        self._splits: OrderedDict[tuple[str, str, str], SplitPages] = OrderedDict()

    def stage(self, name: str) -> StageRef:
        for stage in self.config.stages:
            if stage.name == name:
                return stage
        known = ", ".join(s.name for s in self.config.stages) or "none"
        raise BuilderError(f"unknown stage '{name}' (this recipe has: {known})")

    def check(self, repo: str) -> None:
        """NotServed unless the recipe names `repo` or a manifest read so far pins it as input."""
        if repo not in self._served:
            raise NotServed(f"{repo} is not one of the repositories this Space shows")

    def head(self, repo: str, repo_type: str = "dataset", branch: str = "main") -> str | None:
        """The commit `branch` points at, or None if the repository does not exist."""
        self.check(repo)
        key = (repo_type, repo, branch)
        cached = self._heads.get(key)
        if cached and time.monotonic() - cached[0] < HEAD_TTL_S:
            return cached[1]
        store = self.stores[repo_type]
        try:
            commit = store.resolve(repo, branch) if store.repo_exists(repo) else None
        except RepoNotFound:
            commit = None
        self._heads[key] = (time.monotonic(), commit)
        return commit

    def resolve(self, repo: str, revision: str, repo_type: str = "dataset") -> str:
        if revision in ("", "main", None):
            commit = self.head(repo, repo_type)
            if commit is None:
                raise NotPublished(f"{repo} is not in {self.config.store}")
            return commit
        self.check(repo)
        return self.stores[repo_type].resolve(repo, revision)

    def manifest(self, repo: str, commit: str, repo_type: str = "dataset") -> dict | None:
        self.check(repo)
        key = (repo_type, repo, commit)
        if key not in self._manifests:
            manifest = read_manifest(self.stores[repo_type], repo, commit)
            source = (manifest or {}).get("input") or {}
            if source.get("kind") == "store" and source.get("repo"):
                self._served.add(source["repo"])  # the pinned input of a served revision
            self._manifests[key] = manifest
        return self._manifests[key]

    def published(self, name: str, revision: str | None = None) -> tuple[str, dict | None]:
        """A stage's revision (default: its head) and manifest; NotPublished if it has none."""
        stage = self.stage(name)
        commit = self.head(stage.repo)
        if commit is None:
            raise NotPublished(
                f"stage '{name}' is not published yet ({stage.repo} is not in {self.config.store})"
            )
        if revision:
            commit = self.stores["dataset"].resolve(stage.repo, revision)
        manifest = self.manifest(stage.repo, commit)
        if manifest is None and len(self.stores["dataset"].log(stage.repo, commit)) == 1:
            raise NotPublished(f"stage '{name}' is not published yet ({stage.repo} is empty)")
        return commit, manifest

    def revisions(self, repo: str, repo_type: str = "dataset") -> list[CommitInfo]:
        """The commits of `repo`'s main branch that hold something (its initial commit aside),
        newest first; none if it does not exist."""
        if self.head(repo, repo_type) is None:
            return []
        history = self.stores[repo_type].log(repo)
        return [c for c in history if c.parent is not None]

    def branches(self, repo: str, repo_type: str = "model") -> dict[str, str]:
        if self.head(repo, repo_type) is None:
            return {}
        return self.stores[repo_type].refs(repo).branches

    def split(self, repo: str, commit: str, split: str) -> SplitPages:
        self.check(repo)
        key = (repo, commit, split)
        with self._lock:
            if key in self._splits:
                self._splits.move_to_end(key)
                return self._splits[key]
        pages = SplitPages(self.stores["dataset"], repo, commit, split, self.manifest(repo, commit))
        with self._lock:
            self._splits[key] = pages
            while len(self._splits) > OPEN_SPLITS:
                self._splits.popitem(last=False)[1].close()
        return pages
