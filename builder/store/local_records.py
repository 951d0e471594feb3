"""The local store's commit records and objects (see `local.py` for the layout).

A commit record is named by the SHA-1 of its bytes and holds the tree (path -> object hash and
size); an object is named by the SHA-256 of its content. Both are written atomically and
durably (`files.py`), and checked when read: a record against its id, an object against its
name (once per process).
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime
from pathlib import Path

from builder.store.base import DamagedStore
from builder.store.files import (
    ObjectState,
    check_object,
    copy_atomic,
    file_sha256,
    fsync_file,
    write_atomic,
)

log = logging.getLogger(__name__)


def read_record(path: Path, repo: str, commit_id: str, hint: str) -> dict:
    """The commit record, checked against its id; DamagedStore names it otherwise."""
    file = path / "commits" / f"{commit_id}.json"
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise DamagedStore(f"{repo}@{commit_id}: commit record {file} is missing; {hint}") from None
    record = None
    if hashlib.sha1(data).hexdigest() == commit_id:
        try:
            record = json.loads(data)
        except ValueError:
            pass
    if not _is_record(record):
        raise DamagedStore(
            f"{repo}@{commit_id}: commit record {file} is damaged (its content does not "
            f"match its id); {hint}"
        )
    return record


def write_record(path: Path, parent, message: str, description: str, tree: dict) -> str:
    title, _, body = message.partition("\n")
    record = {
        "parent": parent,
        "title": title,
        "message": (body.strip() + "\n\n" + description).strip() if body else description,
        "created_at": now(),
        "tree": tree,
    }
    text = json.dumps(record, sort_keys=True, indent=1)
    commit_id = hashlib.sha1(text.encode()).hexdigest()
    write_atomic(path / "commits" / f"{commit_id}.json", text)
    return commit_id


def store_file(path: Path, local: Path) -> dict:
    """Store one file's content as an object; returns its tree entry."""
    sha, size = file_sha256(local), local.stat().st_size
    target = path / "objects" / sha
    if not _reuse(target, sha, size):
        copy_atomic(local, target, mode=0o444)
    return {"sha256": sha, "size": size}


def store_bytes(path: Path, data: bytes) -> str:
    sha = hashlib.sha256(data).hexdigest()
    target = path / "objects" / sha
    if not _reuse(target, sha, len(data)):
        write_atomic(target, data, mode=0o444)
    return sha


def _reuse(target: Path, sha: str, size: int) -> bool:
    """Whether an object already there can be used as it is: only if intact (a damaged one is
    replaced by this new copy), and then flushed, in case the process that wrote it died
    before it could."""
    state = check_object(target, sha, size)
    if state is ObjectState.DAMAGED:
        log.warning("replacing damaged object %s with an intact copy", target)
    if state is not ObjectState.INTACT:
        return False
    fsync_file(target)
    return True


def _is_record(record) -> bool:
    return (
        isinstance(record, dict)
        and isinstance(record.get("tree"), dict)
        and all(isinstance(e, dict) and "sha256" in e for e in record["tree"].values())
        and (record.get("parent") is None or isinstance(record.get("parent"), str))
        and all(isinstance(record.get(k), str) for k in ("title", "message", "created_at"))
    )


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
