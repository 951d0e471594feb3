"""`builder store push`: copy a repository's history from one store to another.

Work offline in `local:DIR`, then publish the same repositories to the Hub. Each commit of the
source branch that the target does not have yet is replayed, oldest first, as one commit with
the same files and message; its description records `source-commit: <id>`, which is how a
second push knows what is already there. Commit ids differ between stores (each computes its
own), so a manifest's input revision still names the source store's commit: the description
line maps one to the other. Pushing a repository onto itself (same store, same name) is
refused: it would add a copy of the head on every call.

Branches other than main (a training run's checkpoints, `step-NNNNNN`) are pushed too, each
started in the target where it started in the source: at the replay of the commit it branched
from (or the target's first commit).
"""

from __future__ import annotations

import logging
import re

from builder.errors import StoreError
from builder.store import Store

log = logging.getLogger(__name__)
_MARK = re.compile(r"source-commit: ([0-9a-f]{40})")


def push_repo(source: Store, target: Store, repo: str, target_repo: str, private: bool) -> int:
    """Replay the commits of `repo`'s branches that `target_repo` lacks; returns how many."""
    if (source.uri, source.repo_type, repo) == (target.uri, target.repo_type, target_repo):
        raise StoreError(
            f"cannot push {repo} onto itself ({source.uri}): name another store with --to, "
            "or another repository with --to-repo"
        )
    target.create_repo(target_repo, private=private)
    count = _push_branch(source, target, repo, target_repo, "main")
    for branch in sorted(source.refs(repo).branches):
        if branch != "main":
            count += _push_branch(source, target, repo, target_repo, branch)
    return count


def _replays(target: Store, repo: str, branch: str) -> dict[str, str]:
    """source commit -> its replay in `branch` of the target."""
    return {m: c.id for c in target.log(repo, branch) for m in _MARK.findall(c.message)}


def _push_branch(source: Store, target: Store, repo: str, target_repo: str, branch: str) -> int:
    history = list(reversed(source.log(repo, branch)))[1:]  # oldest first, less the initial one
    if branch not in target.refs(target_repo).branches:
        on_main = _replays(target, target_repo, "main")
        start = [on_main[c.id] for c in history if c.id in on_main]
        target.create_branch(
            target_repo, branch, start[-1] if start else target.log(target_repo)[-1].id
        )
    pushed = _replays(target, target_repo, branch)
    count = 0
    for commit in history:
        if commit.id in pushed:
            continue
        paths = [p for p in source.list_files(repo, commit.id) if p != ".gitattributes"]
        files = source.fetch(repo, commit.id, paths)
        message = commit.title + ("\n\n" + commit.message if commit.message else "")
        head = target.resolve(target_repo, branch)
        revision = target.commit(
            target_repo, files, message, f"source-commit: {commit.id}", parent=head, branch=branch
        )
        log.info(
            "pushed %s@%s as %s@%s (%s)", repo, commit.id[:12], target_repo, revision[:12], branch
        )
        count += 1
    return count
