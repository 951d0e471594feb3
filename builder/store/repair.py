"""`builder store verify [--repair]`: what is damaged in a repository of a local store, and the
repairs that lose nothing.

Checked: every ref (branches, tags), every commit record (it must hash to its id), every object
of every commit a ref reaches (hashed once each), and temporary files left by a killed write.

Repairs, with `--repair`:
- temporary files of processes no longer running are removed;
- damaged objects and commit records are moved into `<repo>/damaged/` (kept, never deleted);
- a branch whose ref or head commit record is damaged is set back to the only commit that can
  have been its head (the one intact commit that no other commit or ref continues); when
  several could, they are listed and nothing is guessed;
- a branch whose head has damaged or missing files gets a new commit restoring the files of its
  newest ancestor whose files are all intact. The stage that published the damaged commit is
  then stale: the next `builder run` publishes it again, writing fresh copies of the files.

Not repaired: damaged tags (listed), and history broken in the middle by a damaged commit record
(`store log` stops there; the branch's files still read).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from builder.store.files import ObjectState, check_object, write_atomic
from builder.store.local import COMMIT_ID, REF_FOLDERS, LocalStore


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)
    unrepaired: list[str] = field(default_factory=list)


def verify_repo(store: LocalStore, repo: str, repair: bool = False) -> Findings:
    path = store.existing_repo_dir(repo)
    found = Findings()
    _temp_files(path, found, repair)
    records, damaged_records = _records(path)
    for commit_id in damaged_records:
        found.problems.append(f"commit record {commit_id} is damaged")
    refs = {}  # (kind, name) -> commit id, or None when damaged
    for kind, folder in REF_FOLDERS.items():
        for ref in sorted(p for p in (path / folder).iterdir() if not p.name.startswith(".")):
            head = ref.read_bytes()[:80].decode("utf-8", "replace").strip()
            refs[(kind, ref.name)] = head if head in records else None
            if head not in records:
                found.problems.append(f"{kind} '{ref.name}' is damaged ({ref} holds {head!r})")
    if not repair:
        _objects(path, records, refs, found)
        return found
    with store.locked(path):
        _quarantine(path, [path / "commits" / f"{c}.json" for c in damaged_records], found)
        for (kind, name), head in list(refs.items()):
            if head is None and kind == "branch":
                refs[(kind, name)] = _restore_ref(path, name, records, refs, found)
            elif head is None:
                found.unrepaired.append(f"tag '{name}': remove {path / 'refs/tags' / name}")
        states = _objects(path, records, refs, found)
        damaged = [s for s, state in states.items() if state is ObjectState.DAMAGED]
        _quarantine(path, [path / "objects" / s for s in damaged], found)
        for (kind, name), head in refs.items():
            if kind == "branch" and head is not None:
                _restore_files(store, path, name, head, records, states, found)
    return found


def _temp_files(path: Path, found: Findings, repair: bool) -> None:
    folders = [path, path / "objects", path / "commits", *(path / f for f in REF_FOLDERS.values())]
    for folder in folders:
        for temp in sorted(folder.glob(".*")):
            if temp.name == ".lock" or not temp.is_file() or _writer_alive(temp.name):
                continue
            found.problems.append(f"temporary file {temp} left by an interrupted write")
            if repair:
                temp.unlink(missing_ok=True)
                found.repairs.append(f"removed {temp}")


def _writer_alive(name: str) -> bool:
    """Whether the process named in a temporary file's name (.NAME.PID.RANDOM.tmp) runs."""
    parts = name.split(".")
    if len(parts) < 5 or not parts[-3].isdigit():
        return False
    try:
        os.kill(int(parts[-3]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _records(path: Path) -> tuple[dict[str, dict], list[str]]:
    records, damaged = {}, []
    for file in sorted((path / "commits").glob("*.json")):
        data = file.read_bytes()
        try:
            record = json.loads(data) if hashlib.sha1(data).hexdigest() == file.stem else None
        except ValueError:
            record = None
        if COMMIT_ID.match(file.stem) and isinstance(record, dict) and "tree" in record:
            records[file.stem] = record
        else:
            damaged.append(file.stem)
    return records, damaged


def _chain(head: str, records: dict[str, dict]) -> list[str]:
    """Intact commits from `head` back to the first commit, or to a damaged record."""
    chain = []
    while head in records and head not in chain:
        chain.append(head)
        head = records[head]["parent"]
    return chain


def _objects(path, records, refs, found: Findings) -> dict[str, ObjectState]:
    """Every object of every commit a ref reaches, checked once. Damaged files of old commits
    already set aside (in damaged/) are not reported again, unless a ref's head uses them."""
    heads = [h for h in refs.values() if h]
    in_heads = {e["sha256"] for h in heads for e in records[h]["tree"].values()}
    states: dict[str, ObjectState] = {}
    for head in heads:
        chain = _chain(head, records)
        parent = records[chain[-1]]["parent"]
        if parent:
            found.problems.append(f"history before {chain[-1]} is broken (record {parent})")
        for commit_id in chain:
            for name, entry in records[commit_id]["tree"].items():
                sha = entry["sha256"]
                if sha in states:
                    continue
                states[sha] = check_object(path / "objects" / sha, sha, entry.get("size"))
                set_aside = (path / "damaged/objects" / sha).exists() and sha not in in_heads
                if states[sha] is not ObjectState.INTACT and not set_aside:
                    what = states[sha].value
                    found.problems.append(f"file '{name}' of {commit_id} is {what} ({sha})")
    return states


def _quarantine(path: Path, files: list[Path], found: Findings) -> None:
    for source in files:
        target = path / "damaged" / source.parent.name / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
        found.repairs.append(f"moved {source} to {target}")


def _restore_ref(path, name, records, refs, found: Findings) -> str | None:
    """Set a damaged branch to the one intact commit that can have been its head."""
    ref = path / "refs/heads" / name
    # Another branch's head is that branch's; a tag may well be this branch's old head.
    others = {h for (kind, other), h in refs.items() if kind == "branch" and other != name}
    parents = {r["parent"] for r in records.values()}
    tips = [c for c in records if c not in parents]
    tips = sorted(
        [c for c in tips if c not in others] or tips, key=lambda c: records[c]["created_at"]
    )
    if len(tips) != 1:
        listed = ", ".join(f"{c} ({records[c]['created_at']})" for c in tips) or "none"
        found.unrepaired.append(
            f"branch '{name}': cannot tell which commit it was at (candidates: {listed}); "
            f"write the right id into {ref}"
        )
        return None
    write_atomic(ref, tips[0])
    found.repairs.append(f"branch '{name}' set to {tips[0]} ({records[tips[0]]['title']})")
    return tips[0]


def _restore_files(store, path, name, head, records, states, found: Findings) -> None:
    """A branch whose head has damaged files: a new commit with the files of its newest
    ancestor whose files are all intact."""

    def intact(commit_id: str) -> bool:
        tree = records[commit_id]["tree"].values()
        return all(states.get(e["sha256"]) is ObjectState.INTACT for e in tree)

    if intact(head):
        return
    good = next((c for c in _chain(head, records) if intact(c)), None)
    if good is None:
        found.unrepaired.append(f"branch '{name}': no commit of its history has intact files")
        return
    record = records[good]
    title = f"Restore the files of {good[:12]}: files of {head[:12]} were damaged"
    description = f"restored by `builder store verify --repair`; {good} was: {record['title']}"
    commit_id = store.write_commit(path, head, title, description, record["tree"])
    write_atomic(path / "refs/heads" / name, commit_id)
    found.repairs.append(f"branch '{name}': new commit {commit_id} restores the files of {good}")
