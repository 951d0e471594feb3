"""The store interface: versioned dataset repositories, as on the Hugging Face Hub.

A repository has commits (40-hex ids, a parent, a message), branches (`main`) and tags. A commit
replaces the whole file tree of a branch at once: a stage's shards, card and manifest appear
together in one commit or not at all, and only if the branch is still where the stage found it
(`parent`), so two writers cannot interleave. Reads always name a revision, and refuse data
that is not what was published (DamagedStore): a read never returns damaged bytes silently.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from builder.errors import StoreError


class DamagedStore(StoreError):
    """A file of the store is not what was published (changed, truncated, missing, garbled);
    the message names the repository, the revision and the file."""


class DiskError(StoreError):
    """A write failed: no space left, a read-only or unwritable folder (named)."""


@dataclass(frozen=True)
class CommitInfo:
    id: str
    title: str
    message: str
    created_at: str  # ISO 8601, UTC
    parent: str | None = None


@dataclass(frozen=True)
class RepoRefs:
    branches: dict[str, str]  # name -> commit id
    tags: dict[str, str]


class Store(abc.ABC):
    """One backend of the store: `local:DIR` or `hf`, for one type of repository (`dataset`,
    the default, or `model`)."""

    uri: str
    repo_type: str = "dataset"

    @abc.abstractmethod
    def default_namespace(self) -> str:
        """The namespace repos go to when the recipe names none."""

    @abc.abstractmethod
    def repo_exists(self, repo: str) -> bool: ...

    @abc.abstractmethod
    def create_repo(self, repo: str, private: bool) -> None:
        """Create `repo` with an initial commit on `main`; no-op if it exists."""

    @abc.abstractmethod
    def resolve(self, repo: str, revision: str = "main") -> str:
        """The commit id of a branch, tag or commit id. Raises RepoNotFound or RevisionNotFound."""

    @abc.abstractmethod
    def commit(
        self,
        repo: str,
        files: dict[str, Path],
        message: str,
        description: str = "",
        parent: str | None = None,
        branch: str = "main",
        keep_other_files: bool = False,
    ) -> str:
        """Make `files` (path in repo -> local file) the whole tree of `branch`, in one commit.

        Files not in `files` are deleted, unless `keep_other_files` (e.g. a model card updated
        next to the weights). If `parent` is given and the branch no longer points at
        it, nothing is written and CommitConflict is raised. Returns the new commit id.
        """

    @abc.abstractmethod
    def log(self, repo: str, revision: str = "main") -> list[CommitInfo]:
        """Commits reachable from `revision`, newest first."""

    @abc.abstractmethod
    def refs(self, repo: str) -> RepoRefs: ...

    @abc.abstractmethod
    def tag(self, repo: str, tag: str, revision: str) -> None: ...

    @abc.abstractmethod
    def create_branch(self, repo: str, branch: str, revision: str = "main") -> None:
        """Create `branch` at `revision`; no-op if it exists (e.g. a training checkpoint's)."""

    @abc.abstractmethod
    def list_files(self, repo: str, revision: str) -> list[str]: ...

    @abc.abstractmethod
    def fetch(self, repo: str, revision: str, paths: list[str]) -> dict[str, Path]:
        """Local, read-only copies of `paths` at `revision` (a commit id)."""

    def open_file(self, repo: str, revision: str, path: str) -> BinaryIO:
        """A seekable binary file of `path` at `revision`, for readers that need only parts of
        it (a parquet footer and a few row groups). The default opens a fetched copy; the Hub's
        reads only the byte ranges asked for."""
        return open(self.fetch(repo, revision, [path])[path], "rb")

    def read_text(self, repo: str, revision: str, path: str) -> str | None:
        """The text of one file at `revision`, or None if the file is not there."""
        if path not in self.list_files(repo, revision):
            return None
        data = self.fetch(repo, revision, [path])[path].read_bytes()
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise DamagedStore(
                f"{repo}@{revision}: {path} is not UTF-8 text (byte {err.start})"
            ) from None


def split_ref(ref: str) -> tuple[str, str]:
    """'ns/name@rev' -> ('ns/name', 'rev'); no '@' means the main branch."""
    repo, _, revision = ref.partition("@")
    return repo, revision or "main"
