"""The `hf` store: dataset repositories on the Hugging Face Hub, through `huggingface_hub`.

The token is found the ecosystem's way (`HF_TOKEN`, or a saved `hf auth login`), and the endpoint
too (`HF_ENDPOINT`). A publish is ONE `create_commit` carrying every addition and deletion, with
`parent_commit` set to the revision the stage started from, so the Hub refuses it (HTTP 412) if
anyone published in between. `push_to_hub` is not used: it makes a commit per shard and can leave
a half-written dataset behind.

Every call has a timeout and bounded retries, then a one-line error (hub_calls.py). A commit
whose answer never came may still have been made: each commit carries a `publish-id: <random>`
line in its description, and after a failed try the branch's new commits are searched for it,
so a commit is made once, and reported made, or not made and reported so.

Downloads are checked like the local store's objects: a cached file must hash to the id the
Hub gave it (its SHA-256 for LFS files, its git blob id otherwise). A damaged cached copy is
removed and downloaded again, once; still damaged, it is DamagedStore.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from pathlib import Path

from builder.errors import CommitConflict, StoreError
from builder.store.base import CommitInfo, DamagedStore, RepoRefs, Store
from builder.store.files import ObjectState, check_object
from builder.store.hub_calls import HubUnavailable, Limits, hub_errors, install_timeouts, tried

log = logging.getLogger(__name__)
REPO_TYPES = ("dataset", "model", "space")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_GIT_OID = re.compile(r"^[0-9a-f]{40}$")


class HubStore(Store):
    uri = "hf"

    def __init__(self, repo_type: str = "dataset"):
        from huggingface_hub import HfApi

        self.limits = Limits.from_env()
        install_timeouts(self.limits.timeout)
        self.api = HfApi(library_name="code-instruct-builder")
        self.repo_type = repo_type

    def default_namespace(self) -> str:
        return self.limits.retry(lambda: self.api.whoami()["name"], "whoami")

    def repo_exists(self, repo: str) -> bool:
        return self.limits.retry(lambda: self.api.repo_exists(repo, repo_type=self.repo_type), repo)

    def create_repo(self, repo: str, private: bool) -> None:
        sdk = {"space_sdk": "gradio"} if self.repo_type == "space" else {}
        self.limits.retry(
            lambda: self.api.create_repo(
                repo, repo_type=self.repo_type, private=private, exist_ok=True, **sdk
            ),
            repo,
        )

    def resolve(self, repo: str, revision: str = "main") -> str:
        return self.limits.retry(
            lambda: self.api.repo_info(repo, repo_type=self.repo_type, revision=revision).sha,
            repo,
            revision,
        )

    def refs(self, repo: str) -> RepoRefs:
        refs = self.limits.retry(
            lambda: self.api.list_repo_refs(repo, repo_type=self.repo_type), repo
        )
        return RepoRefs(
            branches={b.name: b.target_commit for b in refs.branches},
            tags={t.name: t.target_commit for t in refs.tags},
        )

    def tag(self, repo: str, tag: str, revision: str) -> None:
        self.limits.retry(
            lambda: self.api.create_tag(repo, tag=tag, revision=revision, repo_type=self.repo_type),
            repo,
            revision,
        )

    def create_branch(self, repo: str, branch: str, revision: str = "main") -> None:
        self.limits.retry(
            lambda: self.api.create_branch(
                repo, branch=branch, revision=revision, repo_type=self.repo_type, exist_ok=True
            ),
            repo,
            revision,
        )

    def log(self, repo: str, revision: str = "main") -> list[CommitInfo]:
        commits = self.limits.retry(
            lambda: self.api.list_repo_commits(repo, repo_type=self.repo_type, revision=revision),
            repo,
            revision,
        )
        parents = [c.commit_id for c in commits[1:]] + [None]
        return [
            CommitInfo(
                id=c.commit_id,
                title=c.title,
                message=c.message,
                created_at=c.created_at.isoformat(timespec="seconds"),
                parent=parent,
            )
            for c, parent in zip(commits, parents)
        ]

    def list_files(self, repo: str, revision: str) -> list[str]:
        return sorted(
            self.limits.retry(
                lambda: self.api.list_repo_files(repo, repo_type=self.repo_type, revision=revision),
                repo,
                revision,
            )
        )

    def fetch(self, repo: str, revision: str, paths: list[str]) -> dict[str, Path]:
        local = self._download(repo, revision, paths)
        damaged = [p for p, f in local.items() if _cached_state(f) is ObjectState.DAMAGED]
        if damaged:
            log.warning(
                "%s@%s: damaged cached copy of %s; downloading again", repo, revision, damaged[0]
            )
            for name in damaged:
                blob = Path(os.path.realpath(local[name]))
                blob.unlink(missing_ok=True)
                local[name].unlink(missing_ok=True)
            local.update(self._download(repo, revision, damaged))
            still = [p for p in damaged if _cached_state(local[p]) is ObjectState.DAMAGED]
            if still:
                raise DamagedStore(
                    f"{repo}@{revision}: file '{still[0]}' is damaged: its content does not "
                    f"match the id the Hub gives it ({local[still[0]]})"
                )
        return local

    def _download(self, repo: str, revision: str, paths: list[str]) -> dict[str, Path]:
        from huggingface_hub import snapshot_download

        folder = self.limits.retry(
            lambda: snapshot_download(
                repo, repo_type=self.repo_type, revision=revision, allow_patterns=list(paths)
            ),
            repo,
            revision,
        )
        local = {p: Path(folder) / p for p in paths}
        missing = [p for p, f in local.items() if not f.is_file()]
        if missing:
            raise StoreError(f"file '{missing[0]}' not found in {repo}@{revision}")
        return local

    def open_file(self, repo: str, revision: str, path: str):
        from urllib.parse import quote

        from huggingface_hub import HfFileSystem

        prefix = {"dataset": "datasets/", "space": "spaces/"}.get(self.repo_type, "")
        address = f"{prefix}{repo}@{quote(revision, safe='')}/{path}"
        try:
            # Byte ranges on demand: a page of a million-row split costs its row groups.
            return self.limits.retry(lambda: HfFileSystem().open(address), repo, revision)
        except FileNotFoundError:
            raise StoreError(f"file '{path}' not found in {repo}@{revision}") from None

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
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete

        title, _, body = message.partition("\n")
        mark = f"publish-id: {uuid.uuid4().hex}"
        current = set() if keep_other_files else set(self.list_files(repo, parent or branch))
        operations = [
            CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(f))
            for p, f in sorted(files.items())
        ]
        operations += [
            CommitOperationDelete(path_in_repo=p)
            for p in sorted(current - set(files) - {".gitattributes"})
        ]
        attempt, waited = 0, 0.0
        while attempt < self.limits.attempts:
            attempt += 1
            try:
                with hub_errors(repo, branch, conflict_from=parent, timeout=self.limits.timeout):
                    return self.api.create_commit(
                        repo,
                        operations,
                        commit_message=title,
                        commit_description="\n\n".join(
                            t for t in (body.strip(), description.strip(), mark) if t
                        ),
                        repo_type=self.repo_type,
                        revision=branch,
                        parent_commit=parent,
                    ).oid
            except CommitConflict:
                made = self._made(repo, branch, parent, mark) if attempt > 1 else None
                if made is None:  # the branch moved, and not by an earlier try of ours
                    raise
                return made
            except HubUnavailable as err:
                made = self._made(repo, branch, parent, mark)
                if made is not None:
                    log.info("%s@%s: the commit was made despite: %s", repo, branch, err)
                    return made
                if (more := self.limits.wait_out(err, waited)) is not None:
                    waited, attempt = waited + more, attempt - 1  # a rate limit: not a try
                    continue
                if err.final or attempt == self.limits.attempts:
                    raise StoreError(
                        f"{err}{tried(attempt)}; nothing was published to {repo}@{branch}"
                    ) from None
                self.limits.pause(err, attempt)
        raise AssertionError("unreachable")

    def _made(self, repo: str, branch: str, parent: str | None, mark: str) -> str | None:
        """The commit on `branch` since `parent` that carries `mark`, if a try made it."""
        try:
            history = self.log(repo, branch)
        except StoreError as err:
            raise StoreError(
                f"cannot tell whether the commit to {repo}@{branch} was made ({err}); "
                "run again: a commit already made is found and not made twice"
            ) from None
        for commit in history[:50]:
            if commit.id == parent:
                return None
            if mark in commit.message:
                return commit.id
        return None


def _cached_state(path: Path) -> ObjectState:
    """A cached download against the id its blob is named by (a SHA-256 for LFS files, a git
    blob id otherwise); INTACT when the cache does not say (no symlinks)."""
    blob = Path(os.path.realpath(path))
    if _SHA256.match(blob.name):
        return check_object(blob, blob.name)
    if _GIT_OID.match(blob.name):
        return check_object(blob, blob.name, git_blob=True)
    return ObjectState.INTACT
