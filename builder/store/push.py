"""`builder store push`: copy a repository's history from one store to another.

Work offline in `local:DIR`, then publish the same repositories to the Hub. Each commit of the
source branch that the target does not have yet is replayed, oldest first, as one commit with
the same files and message; its description records `source-commit: <id>`, which is how a
second push knows what is already there. Commit ids differ between stores (each computes its
own), so a manifest's input revision still names the source store's commit: the description
line maps one to the other. Pushing a repository onto itself (same store, same name) is
refused: it would add a copy of the head on every call.
"""

from __future__ import annotations

import logging
import re

from builder.errors import StoreError
from builder.store import Store

log = logging.getLogger(__name__)
_MARK = re.compile(r"source-commit: ([0-9a-f]{40})")


def push_repo(source: Store, target: Store, repo: str, target_repo: str, private: bool) -> int:
    """Replay the commits of `repo`'s main branch that `target_repo` lacks; returns how many."""
    if (source.uri, source.repo_type, repo) == (target.uri, target.repo_type, target_repo):
        raise StoreError(
            f"cannot push {repo} onto itself ({source.uri}): name another store with --to, "
            "or another repository with --to-repo"
        )
    history = list(reversed(source.log(repo)))[1:]  # oldest first, without the initial commit
    target.create_repo(target_repo, private=private)
    pushed = {m for c in target.log(target_repo) for m in _MARK.findall(c.message)}
    count = 0
    for commit in history:
        if commit.id in pushed:
            continue
        paths = [p for p in source.list_files(repo, commit.id) if p != ".gitattributes"]
        files = source.fetch(repo, commit.id, paths)
        message = commit.title + ("\n\n" + commit.message if commit.message else "")
        head = target.resolve(target_repo)
        revision = target.commit(
            target_repo, files, message, f"source-commit: {commit.id}", parent=head
        )
        log.info("pushed %s@%s as %s@%s", repo, commit.id[:12], target_repo, revision[:12])
        count += 1
    return count
