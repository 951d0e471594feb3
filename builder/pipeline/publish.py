"""The one publisher: every step's output, whatever its kind, becomes one atomic commit.

A published revision is a folder's files (the step's data or weights), a `README.md` card and a
`manifest.json` that says what the revision is (`kind`: dataset, model or evaluation), where it
came from and how it was made. `builder status`, `builder store show/log/export` and the Space
read every kind through `read_manifest`.

A commit names the head it was planned against as its parent: if anyone published in between,
the store refuses it (CommitConflict) and nothing is written. A manifest that is not a JSON
object is DamagedStore (one line naming the revision), never a traceback.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path

from builder.errors import CommitConflict
from builder.store import DamagedStore, Store
from builder.store.files import disk_errors

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
CARD = "README.md"
MANIFEST_FORMAT = 1


def read_manifest(store: Store, repo: str, revision: str) -> dict | None:
    """The manifest of a revision, or None (e.g. the repo's initial commit, or a repository
    not made by this tool)."""
    text = store.read_text(repo, revision, MANIFEST)
    if not text:
        return None
    try:
        manifest = json.loads(text)
    except ValueError as err:
        raise DamagedStore(f"{repo}@{revision}: {MANIFEST} is not valid JSON ({err})") from None
    if not isinstance(manifest, dict):
        raise DamagedStore(f"{repo}@{revision}: {MANIFEST} is not a JSON object")
    return manifest


def manifest_kind(manifest: dict | None) -> str | None:
    """dataset, model or evaluation (manifests from before kinds existed are datasets)."""
    if manifest is None:
        return None
    return manifest.get("kind", "dataset")


def publish(
    store: Store,
    repo: str,
    folder: Path,
    manifest: dict,
    card: str,
    title: str,
    description: str = "",
    parent: str | None = None,
    private: bool = True,
    branch: str = "main",
) -> str:
    """Commit every file under `folder`, with the manifest and card written beside them, as
    one commit on `branch`. `parent`: the head the work was planned against (None: the
    repository must not exist yet, or must be new). Another branch than main (a training
    checkpoint's) is made from the repository's first commit if it does not exist, and takes
    the commit whatever its head. Returns the new commit id."""
    with disk_errors(folder):
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True, default=str))
        (folder / CARD).write_text(card)
    if branch != "main":
        store.create_repo(repo, private=private)
        # From the repository's first commit, not main: until the commit lands (or if the run
        # dies first) the branch shows an empty repository, never another revision's files.
        store.create_branch(repo, branch, store.log(repo)[-1].id)
        parent = store.resolve(repo, branch)
    elif parent is None:
        store.create_repo(repo, private=private)
        history = store.log(repo)
        if len(history) != 1:  # another run created it and published first
            raise CommitConflict(f"{repo} was published by another run meanwhile; rerun")
        parent = history[0].id
    files = {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*")) if p.is_file()}
    return store.commit(repo, files, title, description, parent=parent, branch=branch)


def update_card(
    store: Store, repo: str, transform: Callable[[str], str], title: str, branch: str = "main"
) -> str | None:
    """Rewrite the card of `repo`'s `branch` with `transform(card)`, every other file left as
    it is (e.g. scores written into a model's `model-index`); None if there is no such repo."""
    if not store.repo_exists(repo):
        return None
    head = store.resolve(repo, branch)
    card = store.read_text(repo, head, CARD) or ""
    with tempfile.TemporaryDirectory(prefix="builder-card-") as tmp:
        path = Path(tmp) / CARD
        with disk_errors(Path(tmp)):
            path.write_text(transform(card))
        return store.commit(
            repo, {CARD: path}, title, parent=head, branch=branch, keep_other_files=True
        )
