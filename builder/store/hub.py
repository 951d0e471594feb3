"""The `hf` store: dataset repositories on the Hugging Face Hub, through `huggingface_hub`.

The token is found the ecosystem's way (`HF_TOKEN`, or a saved `hf auth login`), and the endpoint
too (`HF_ENDPOINT`). A publish is ONE `create_commit` carrying every addition and deletion, with
`parent_commit` set to the revision the stage started from, so the Hub refuses it (HTTP 412) if
anyone published in between. `push_to_hub` is not used: it makes a commit per shard and can leave
a half-written dataset behind.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path

from builder.errors import CommitConflict, RepoNotFound, RevisionNotFound, StoreError
from builder.store.base import CommitInfo, RepoRefs, Store

log = logging.getLogger(__name__)
REPO_TYPES = ("dataset", "model", "space")


class HubStore(Store):
    uri = "hf"

    def __init__(self, repo_type: str = "dataset"):
        from huggingface_hub import HfApi

        self.api = HfApi(library_name="code-instruct-builder")
        self.repo_type = repo_type

    def default_namespace(self) -> str:
        with _hub_errors("whoami"):
            return self.api.whoami()["name"]

    def repo_exists(self, repo: str) -> bool:
        with _hub_errors(repo):
            return self.api.repo_exists(repo, repo_type=self.repo_type)

    def create_repo(self, repo: str, private: bool) -> None:
        with _hub_errors(repo):
            self.api.create_repo(
                repo, repo_type=self.repo_type, private=private, exist_ok=True,
                **({"space_sdk": "gradio"} if self.repo_type == "space" else {}),
            )  # fmt: skip

    def resolve(self, repo: str, revision: str = "main") -> str:
        with _hub_errors(repo, revision):
            return self.api.repo_info(repo, repo_type=self.repo_type, revision=revision).sha

    def refs(self, repo: str) -> RepoRefs:
        with _hub_errors(repo):
            refs = self.api.list_repo_refs(repo, repo_type=self.repo_type)
        return RepoRefs(
            branches={b.name: b.target_commit for b in refs.branches},
            tags={t.name: t.target_commit for t in refs.tags},
        )

    def tag(self, repo: str, tag: str, revision: str) -> None:
        with _hub_errors(repo, revision):
            self.api.create_tag(repo, tag=tag, revision=revision, repo_type=self.repo_type)

    def create_branch(self, repo: str, branch: str, revision: str = "main") -> None:
        with _hub_errors(repo, revision):
            self.api.create_branch(
                repo, branch=branch, revision=revision, repo_type=self.repo_type, exist_ok=True
            )

    def log(self, repo: str, revision: str = "main") -> list[CommitInfo]:
        with _hub_errors(repo, revision):
            commits = self.api.list_repo_commits(repo, repo_type=self.repo_type, revision=revision)
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
        with _hub_errors(repo, revision):
            return sorted(
                self.api.list_repo_files(repo, repo_type=self.repo_type, revision=revision)
            )

    def fetch(self, repo: str, revision: str, paths: list[str]) -> dict[str, Path]:
        from huggingface_hub import snapshot_download

        with _hub_errors(repo, revision):
            folder = snapshot_download(
                repo, repo_type=self.repo_type, revision=revision, allow_patterns=list(paths)
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
        try:
            with _hub_errors(repo, revision):
                # Byte ranges on demand: a page of a million-row split costs its row groups.
                return HfFileSystem().open(f"{prefix}{repo}@{quote(revision, safe='')}/{path}")
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
        current = set() if keep_other_files else set(self.list_files(repo, parent or branch))
        operations = [
            CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(f))
            for p, f in sorted(files.items())
        ]
        operations += [
            CommitOperationDelete(path_in_repo=p)
            for p in sorted(current - set(files) - {".gitattributes"})
        ]
        with _hub_errors(repo, branch, conflict_from=parent):
            info = self.api.create_commit(
                repo,
                operations,
                commit_message=title,
                commit_description=(body.strip() + "\n\n" + description).strip(),
                repo_type=self.repo_type,
                revision=branch,
                parent_commit=parent,
            )
        return info.oid


@contextmanager
def _hub_errors(repo: str, revision: str | None = None, conflict_from: str | None = None):
    """Turn the client's exceptions into one-line store errors that name what was asked."""
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalTokenNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        yield
    except RevisionNotFoundError:
        raise RevisionNotFound(f"revision '{revision}' not found in {repo} (hf)") from None
    except RepositoryNotFoundError:
        raise RepoNotFound(f"repository '{repo}' not found on the Hub, or not visible") from None
    except LocalTokenNotFoundError:
        raise StoreError("no Hugging Face token: set HF_TOKEN or run `hf auth login`") from None
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else None
        if status == 412 and conflict_from:
            raise CommitConflict(
                f"{repo}@{revision} moved since {conflict_from}: someone else published; rerun"
            ) from None
        if status == 401:
            raise StoreError(f"the Hub refused the token for {repo} (HTTP 401)") from None
        first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise StoreError(f"Hub error for {repo}: {first_line}") from None
    except Exception as err:
        if not _is_network_error(err):
            raise
        raise StoreError(f"cannot reach the Hub for {repo}: {err}") from None


def _is_network_error(err: Exception) -> bool:
    """Connection refused, DNS, timeouts: raised by the HTTP library huggingface_hub uses."""
    library = type(err).__module__.split(".")[0]
    if isinstance(err, (ConnectionError, TimeoutError)):
        return True
    return library in ("httpx", "httpx2", "requests", "urllib3") and not isinstance(err, OSError)
