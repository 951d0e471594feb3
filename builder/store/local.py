"""The `local:DIR` store: a directory that mirrors the Hub's model of a dataset repository.

Layout of DIR/datasets/<namespace>/<name>/ (and DIR/models/... for model repositories):
    repo.json            id, private flag, creation time (written last: the repo exists once
                         it is there)
    objects/<sha256>     file contents, stored once however many commits use them
    commits/<id>.json    parent, message, time, and the tree (path -> object hash, size); the id
                         is the SHA-1 of this file's bytes
    refs/heads/<branch>  a commit id
    refs/tags/<tag>      a commit id

A commit writes its objects, then the commit record, then moves the branch ref: each file by
atomic rename after an fsync, and each folder fsynced after its renames, so the objects are on
disk before the record that names them, and the record before the ref (files.py). The ref moves
under a file lock after checking the expected parent. A crash or power cut at any point leaves
the branch at the old commit or the new one, whole.

Every read is checked: a ref must hold the id of a commit record that is there; a record must
hash to its id; an object must hash to its name (once per process, files.check_object). Anything
else is DamagedStore, one line naming the repository, revision and file; `builder store verify`
reports and repairs (repair.py). Not covered: concurrent writers on a network filesystem
without working `flock`.
"""

from __future__ import annotations

import fcntl
import json
import logging
import re
from contextlib import contextmanager
from pathlib import Path

from builder.errors import CommitConflict, RepoNotFound, RevisionNotFound, StoreError
from builder.store.base import CommitInfo, DamagedStore, RepoRefs, Store
from builder.store.files import (
    ObjectState,
    check_object,
    disk_errors,
    fsync_dir,
    write_atomic,
)
from builder.store.local_records import now, read_record, store_bytes, store_file, write_record

log = logging.getLogger(__name__)

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_HEX = re.compile(r"^[0-9a-f]{7,40}$")
COMMIT_ID = re.compile(r"^[0-9a-f]{40}$")
_GITATTRIBUTES = "*.parquet filter=lfs diff=lfs merge=lfs -text\n"
REF_FOLDERS = {"branch": "refs/heads", "tag": "refs/tags"}


class LocalStore(Store):
    def __init__(self, root: str | Path, repo_type: str = "dataset"):
        self.root = Path(root).expanduser().resolve()
        self.uri = f"local:{self.root}"
        self.repo_type = repo_type
        self._folder = {"dataset": "datasets", "model": "models"}[repo_type]

    def default_namespace(self) -> str:
        return "local"

    # -- repositories ------------------------------------------------------------------------

    def repo_dir(self, repo: str) -> Path:
        if not _REPO_ID.match(repo) or ".." in repo:
            raise StoreError(f"invalid repo id '{repo}': expected namespace/name")
        return self.root / self._folder / repo

    def existing_repo_dir(self, repo: str) -> Path:
        path = self.repo_dir(repo)
        if not (path / "repo.json").is_file():
            raise RepoNotFound(f"repository '{repo}' not found in {self.uri}")
        return path

    def repo_exists(self, repo: str) -> bool:
        return (self.repo_dir(repo) / "repo.json").is_file()

    def create_repo(self, repo: str, private: bool) -> None:
        path = self.repo_dir(repo)
        with disk_errors(path.parent):
            path.mkdir(parents=True, exist_ok=True)
        with self.locked(path):
            if (path / "repo.json").is_file():
                return
            with disk_errors(path):
                for sub in ("objects", "commits", "refs/heads", "refs/tags"):
                    (path / sub).mkdir(parents=True, exist_ok=True)
            attributes = store_bytes(path, _GITATTRIBUTES.encode())
            tree = {".gitattributes": {"sha256": attributes, "size": len(_GITATTRIBUTES)}}
            fsync_dir(path / "objects")
            first = self.write_commit(path, None, "initial commit", "", tree)
            write_atomic(path / "refs/heads/main", first)
            info = {"id": repo, "private": private, "created_at": now()}
            write_atomic(path / "repo.json", json.dumps(info, indent=1))
            for folder in (path / "refs", path.parent, path.parent.parent):
                fsync_dir(folder)  # the new folders' own entries

    # -- revisions ---------------------------------------------------------------------------

    def resolve(self, repo: str, revision: str = "main") -> str:
        path = self.existing_repo_dir(repo)
        if "/" not in revision and revision not in ("", ".", ".."):
            for kind, folder in REF_FOLDERS.items():
                if (path / folder / revision).is_file():
                    return self.read_ref(path, repo, kind, revision)
        if _HEX.match(revision):
            matches = [p.stem for p in (path / "commits").glob(f"{revision}*.json")]
            if len(matches) == 1:
                return matches[0]
        raise RevisionNotFound(f"revision '{revision}' not found in {repo} ({self.uri})")

    def read_ref(self, path: Path, repo: str, kind: str, name: str) -> str:
        """The commit id a branch or tag holds; DamagedStore unless it names a commit here."""
        ref = path / REF_FOLDERS[kind] / name
        text = ref.read_bytes()[:80].decode("utf-8", "replace")
        commit_id = text.strip()
        if not COMMIT_ID.match(commit_id):
            problem = "is empty" if not commit_id else f"holds {text!r}, not a commit id"
        elif not (path / "commits" / f"{commit_id}.json").is_file():
            problem = f"names commit {commit_id}, which is not in the store"
        else:
            return commit_id
        raise DamagedStore(
            f"{repo}: {kind} '{name}' is damaged: {ref} {problem}; {self.hint(repo)}"
        )

    def refs(self, repo: str) -> RepoRefs:
        path = self.existing_repo_dir(repo)
        found = {
            kind: {
                p.name: self.read_ref(path, repo, kind, p.name) for p in self._ref_files(path, kind)
            }
            for kind in REF_FOLDERS
        }
        return RepoRefs(branches=found["branch"], tags=found["tag"])

    def tag(self, repo: str, tag: str, revision: str) -> None:
        path = self.existing_repo_dir(repo)
        if not re.match(r"^[\w.-]+$", tag):
            raise StoreError(f"invalid tag name '{tag}'")
        commit_id = self.resolve(repo, revision)
        with self.locked(path):
            if (path / "refs/tags" / tag).exists():
                raise StoreError(f"tag '{tag}' already exists in {repo}")
            write_atomic(path / "refs/tags" / tag, commit_id)

    def create_branch(self, repo: str, branch: str, revision: str = "main") -> None:
        path = self.existing_repo_dir(repo)
        if not re.match(r"^[\w.-]+$", branch):
            raise StoreError(f"invalid branch name '{branch}'")
        commit_id = self.resolve(repo, revision)
        with self.locked(path):
            if not (path / "refs/heads" / branch).exists():
                write_atomic(path / "refs/heads" / branch, commit_id)

    def log(self, repo: str, revision: str = "main") -> list[CommitInfo]:
        path = self.existing_repo_dir(repo)
        commit_id: str | None = self.resolve(repo, revision)
        history = []
        while commit_id:
            record = self.commit_record(path, repo, commit_id)
            history.append(
                CommitInfo(
                    id=commit_id,
                    title=record["title"],
                    message=record["message"],
                    created_at=record["created_at"],
                    parent=record["parent"],
                )
            )
            commit_id = record["parent"]
        return history

    # -- files -------------------------------------------------------------------------------

    def list_files(self, repo: str, revision: str) -> list[str]:
        path = self.existing_repo_dir(repo)
        return sorted(self.commit_record(path, repo, self.resolve(repo, revision))["tree"])

    def fetch(self, repo: str, revision: str, paths: list[str]) -> dict[str, Path]:
        path = self.existing_repo_dir(repo)
        commit_id = self.resolve(repo, revision)
        tree = self.commit_record(path, repo, commit_id)["tree"]
        missing = [p for p in paths if p not in tree]
        if missing:
            raise StoreError(f"file '{missing[0]}' not found in {repo}@{revision}")
        local = {}
        for name in paths:
            entry = tree[name]
            obj = path / "objects" / entry["sha256"]
            state = check_object(obj, entry["sha256"], entry.get("size"))
            if state is not ObjectState.INTACT:
                problem = (
                    "is missing from the store"
                    if state is ObjectState.MISSING
                    else "is damaged: its content does not match its SHA-256"
                )
                raise DamagedStore(
                    f"{repo}@{commit_id}: file '{name}' {problem} ({obj}); {self.hint(repo)}"
                )
            local[name] = obj
        return local

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
        path = self.existing_repo_dir(repo)
        kept = {}
        if keep_other_files:
            kept = self.commit_record(path, repo, self.resolve(repo, parent or branch))["tree"]
        tree = {".gitattributes": None, **kept, **{p: None for p in files}}
        for repo_path, local in sorted(files.items()):
            tree[repo_path] = store_file(path, Path(local))
        if tree[".gitattributes"] is None:
            data = _GITATTRIBUTES.encode()
            tree[".gitattributes"] = {"sha256": store_bytes(path, data), "size": len(data)}
        fsync_dir(path / "objects")  # every object on disk before the record that names them
        with self.locked(path):
            if not (path / "refs/heads" / branch).is_file():
                raise RevisionNotFound(f"branch '{branch}' not found in {repo} ({self.uri})")
            head = self.read_ref(path, repo, "branch", branch)
            if parent is not None and head != parent:
                raise CommitConflict(
                    f"{repo}@{branch} moved to {head} since {parent}: someone else published; rerun"
                )
            commit_id = self.write_commit(path, head, message, description, tree)
            write_atomic(path / "refs/heads" / branch, commit_id)
        return commit_id

    # -- internals ---------------------------------------------------------------------------

    def hint(self, repo: str) -> str:
        model = " --model" if self.repo_type == "model" else ""
        return f"`builder store verify {repo} --store {self.uri}{model}` reports and repairs"

    @contextmanager
    def locked(self, path: Path):
        with disk_errors(path), open(path / ".lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @staticmethod
    def _ref_files(path: Path, kind: str) -> list[Path]:
        folder = path / REF_FOLDERS[kind]
        return sorted(p for p in folder.iterdir() if not p.name.startswith("."))

    def commit_record(self, path: Path, repo: str, commit_id: str) -> dict:
        """The commit record, checked against its id; DamagedStore names it otherwise."""
        return read_record(path, repo, commit_id, self.hint(repo))

    def write_commit(self, path, parent, message, description, tree) -> str:
        return write_record(path, parent, message, description, tree)
