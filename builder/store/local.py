"""The `local:DIR` store: a directory that mirrors the Hub's model of a dataset repository.

Layout of DIR/datasets/<namespace>/<name>/ (and DIR/models/... for model repositories):
    repo.json            id, private flag, creation time
    objects/<sha256>     file contents, stored once however many commits use them
    commits/<id>.json    parent, message, time, and the tree (path -> object hash, size)
    refs/heads/<branch>  a commit id
    refs/tags/<tag>      a commit id

A commit is written objects first, then the commit file, then the branch ref, each by atomic
rename; the ref is moved under a file lock after checking the expected parent. A crash at any
point leaves either the old branch or the new one, never a half-written tree. Commit ids are 40
hex digits (a SHA-1 of the commit record), so a revision can be named as on the Hub.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from builder.errors import CommitConflict, RepoNotFound, RevisionNotFound, StoreError
from builder.store.base import CommitInfo, RepoRefs, Store

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_HEX = re.compile(r"^[0-9a-f]{7,40}$")
_GITATTRIBUTES = "*.parquet filter=lfs diff=lfs merge=lfs -text\n"


class LocalStore(Store):
    def __init__(self, root: str | Path, repo_type: str = "dataset"):
        self.root = Path(root).expanduser().resolve()
        self.uri = f"local:{self.root}"
        self.repo_type = repo_type
        self._folder = {"dataset": "datasets", "model": "models"}[repo_type]

    def default_namespace(self) -> str:
        return "local"

    # -- repositories ------------------------------------------------------------------------

    def _repo_dir(self, repo: str) -> Path:
        if not _REPO_ID.match(repo) or ".." in repo:
            raise StoreError(f"invalid repo id '{repo}': expected namespace/name")
        return self.root / self._folder / repo

    def _existing_repo_dir(self, repo: str) -> Path:
        path = self._repo_dir(repo)
        if not (path / "repo.json").is_file():
            raise RepoNotFound(f"repository '{repo}' not found in {self.uri}")
        return path

    def repo_exists(self, repo: str) -> bool:
        return (self._repo_dir(repo) / "repo.json").is_file()

    def create_repo(self, repo: str, private: bool) -> None:
        path = self._repo_dir(repo)
        path.mkdir(parents=True, exist_ok=True)
        with self._locked(path):
            if (path / "repo.json").is_file():
                return
            for sub in ("objects", "commits", "refs/heads", "refs/tags"):
                (path / sub).mkdir(parents=True, exist_ok=True)
            attributes = self._store_object(path, _GITATTRIBUTES.encode())
            tree = {".gitattributes": {"sha256": attributes, "size": len(_GITATTRIBUTES)}}
            first = self._write_commit(path, None, "initial commit", "", tree)
            _atomic_write(path / "refs/heads/main", first)
            info = {"id": repo, "private": private, "created_at": _now()}
            _atomic_write(path / "repo.json", json.dumps(info, indent=1))

    # -- revisions ---------------------------------------------------------------------------

    def resolve(self, repo: str, revision: str = "main") -> str:
        path = self._existing_repo_dir(repo)
        for ref in (path / "refs/heads" / revision, path / "refs/tags" / revision):
            if "/" not in revision and ref.is_file():
                return ref.read_text().strip()
        if _HEX.match(revision):
            matches = [p.stem for p in (path / "commits").glob(f"{revision}*.json")]
            if len(matches) == 1:
                return matches[0]
        raise RevisionNotFound(f"revision '{revision}' not found in {repo} ({self.uri})")

    def refs(self, repo: str) -> RepoRefs:
        path = self._existing_repo_dir(repo)
        read = lambda d: {p.name: p.read_text().strip() for p in sorted(d.iterdir())}  # noqa: E731
        return RepoRefs(branches=read(path / "refs/heads"), tags=read(path / "refs/tags"))

    def tag(self, repo: str, tag: str, revision: str) -> None:
        path = self._existing_repo_dir(repo)
        if not re.match(r"^[\w.-]+$", tag):
            raise StoreError(f"invalid tag name '{tag}'")
        commit_id = self.resolve(repo, revision)
        with self._locked(path):
            if (path / "refs/tags" / tag).exists():
                raise StoreError(f"tag '{tag}' already exists in {repo}")
            _atomic_write(path / "refs/tags" / tag, commit_id)

    def create_branch(self, repo: str, branch: str, revision: str = "main") -> None:
        path = self._existing_repo_dir(repo)
        if not re.match(r"^[\w.-]+$", branch):
            raise StoreError(f"invalid branch name '{branch}'")
        commit_id = self.resolve(repo, revision)
        with self._locked(path):
            if not (path / "refs/heads" / branch).exists():
                _atomic_write(path / "refs/heads" / branch, commit_id)

    def log(self, repo: str, revision: str = "main") -> list[CommitInfo]:
        path = self._existing_repo_dir(repo)
        commit_id: str | None = self.resolve(repo, revision)
        history = []
        while commit_id:
            record = self._commit_record(path, commit_id)
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
        path = self._existing_repo_dir(repo)
        return sorted(self._commit_record(path, self.resolve(repo, revision))["tree"])

    def fetch(self, repo: str, revision: str, paths: list[str]) -> dict[str, Path]:
        path = self._existing_repo_dir(repo)
        tree = self._commit_record(path, self.resolve(repo, revision))["tree"]
        missing = [p for p in paths if p not in tree]
        if missing:
            raise StoreError(f"file '{missing[0]}' not found in {repo}@{revision}")
        return {p: path / "objects" / tree[p]["sha256"] for p in paths}

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
        path = self._existing_repo_dir(repo)
        kept = {}
        if keep_other_files:
            kept = self._commit_record(path, self.resolve(repo, parent or branch))["tree"]
        tree = {".gitattributes": None, **kept, **{p: None for p in files}}
        for repo_path, local in sorted(files.items()):
            local = Path(local)
            tree[repo_path] = {
                "sha256": self._store_file(path, local),
                "size": local.stat().st_size,
            }
        if tree[".gitattributes"] is None:
            data = _GITATTRIBUTES.encode()
            tree[".gitattributes"] = {"sha256": self._store_object(path, data), "size": len(data)}
        with self._locked(path):
            head_ref = path / "refs/heads" / branch
            head = head_ref.read_text().strip() if head_ref.is_file() else None
            if parent is not None and head != parent:
                raise CommitConflict(
                    f"{repo}@{branch} moved to {head} since {parent}: someone else published; rerun"
                )
            commit_id = self._write_commit(path, head, message, description, tree)
            _atomic_write(head_ref, commit_id)
        return commit_id

    # -- internals ---------------------------------------------------------------------------

    @contextmanager
    def _locked(self, path: Path):
        with open(path / ".lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _commit_record(self, path: Path, commit_id: str) -> dict:
        try:
            return json.loads((path / "commits" / f"{commit_id}.json").read_text())
        except FileNotFoundError:
            raise StoreError(f"commit {commit_id} is missing from {path}: corrupt store") from None

    def _write_commit(self, path, parent, message, description, tree) -> str:
        title, _, body = message.partition("\n")
        record = {
            "parent": parent,
            "title": title,
            "message": (body.strip() + "\n\n" + description).strip() if body else description,
            "created_at": _now(),
            "tree": tree,
        }
        text = json.dumps(record, sort_keys=True, indent=1)
        commit_id = hashlib.sha1(text.encode()).hexdigest()
        _atomic_write(path / "commits" / f"{commit_id}.json", text)
        return commit_id

    def _store_file(self, path: Path, local: Path) -> str:
        digest = hashlib.sha256()
        with open(local, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        sha = digest.hexdigest()
        target = path / "objects" / sha
        if not target.exists():
            tmp = target.with_name(f".{sha}.{os.getpid()}.tmp")
            shutil.copyfile(local, tmp)
            os.chmod(tmp, 0o444)
            os.replace(tmp, target)
        return sha

    def _store_object(self, path: Path, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        target = path / "objects" / sha
        if not target.exists():
            _atomic_write(target, data)
        return sha


def _atomic_write(target: Path, data: str | bytes) -> None:
    """Write a file so that readers see the old content or the new, never a part."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data.encode() if isinstance(data, str) else data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, target)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
