"""What the local store promises beyond its everyday use, each written down because a mutation
of the code that keeps it went unnoticed (benchmarks/mutation.py): refs move only under the
repository's lock, tags and branches refuse bad names and never move, records and objects are
checked and read-only, messages keep their body, an object already stored is not copied again,
and what is written is on disk before it is flushed."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
from pathlib import Path

import pytest

from builder.errors import RevisionNotFound, StoreError
from builder.store import DamagedStore, open_store
from builder.store.files import ObjectState, check_object, disk_errors, write_atomic
from tests.helpers import record_flushes_and_renames

REPO = "tester/guarantees"


@pytest.fixture
def store(tmp_path):
    store = open_store(f"local:{tmp_path / 'store'}")
    store.create_repo(REPO, private=True)
    return store


def repo_dir(store) -> Path:
    return store.root / "datasets" / REPO


def a_file(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / "files" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_refs_move_only_while_the_repository_lock_is_held(store, tmp_path, monkeypatch):
    """Every rename onto a ref (commit, tag, new branch) happens between taking the repository's
    lock and releasing it (two writers would otherwise both see the old head and both move it)."""
    events = []
    real_flock, real_replace = fcntl.flock, os.replace

    def flock(fd, operation):
        events.append(("lock" if operation & fcntl.LOCK_EX else "unlock", ""))
        return real_flock(fd, operation)

    def replace(source, target):
        events.append(("rename", str(target)))
        return real_replace(source, target)

    monkeypatch.setattr(fcntl, "flock", flock)
    monkeypatch.setattr(os, "replace", replace)
    head = store.commit(
        REPO, {"a.txt": a_file(tmp_path, "a.txt", "a")}, "a", parent=store.resolve(REPO)
    )
    store.tag(REPO, "v1", head)
    store.create_branch(REPO, "side", head)
    monkeypatch.undo()
    refs = [i for i, (kind, target) in enumerate(events) if kind == "rename" and "/refs/" in target]
    assert len(refs) == 3
    for index in refs:
        before = [kind for kind, _ in events[:index] if kind in ("lock", "unlock")]
        after = [kind for kind, _ in events[index:] if kind in ("lock", "unlock")]
        assert before[-1:] == ["lock"] and after[:1] == ["unlock"], events


def test_tags_refuse_bad_names_and_never_move(store, tmp_path):
    first = store.resolve(REPO)
    store.tag(REPO, "v1", first)
    second = store.commit(REPO, {"a.txt": a_file(tmp_path, "a.txt", "a")}, "a", parent=first)
    with pytest.raises(StoreError, match="tag 'v1' already exists"):
        store.tag(REPO, "v1", second)
    assert store.resolve(REPO, "v1") == first
    for bad in ("../main", "a b", "x/y", ""):
        with pytest.raises(StoreError, match="invalid tag name"):
            store.tag(REPO, bad, second)
    assert sorted(p.name for p in (repo_dir(store) / "refs/tags").iterdir()) == ["v1"]


def test_a_new_branch_starts_at_its_revision_and_an_existing_one_is_not_moved(store, tmp_path):
    first = store.resolve(REPO)
    second = store.commit(REPO, {"a.txt": a_file(tmp_path, "a.txt", "a")}, "a", parent=first)
    store.create_branch(REPO, "side", first)
    assert store.resolve(REPO, "side") == first and store.resolve(REPO) == second
    store.create_branch(REPO, "side", second)  # already there: left as it is
    assert store.resolve(REPO, "side") == first
    for bad in ("../main", "a b", "x/y"):
        with pytest.raises(StoreError, match="invalid branch name"):
            store.create_branch(REPO, bad, second)
    third = store.commit(REPO, {"b.txt": a_file(tmp_path, "b.txt", "b")}, "b", branch="side",
                         parent=first)  # fmt: skip
    assert store.resolve(REPO, "side") == third and store.resolve(REPO) == second


def test_a_commit_to_a_branch_that_does_not_exist_is_refused(store, tmp_path):
    with pytest.raises(RevisionNotFound, match="branch 'nope' not found"):
        store.commit(REPO, {"a.txt": a_file(tmp_path, "a.txt", "a")}, "a", branch="nope")


def test_a_revision_is_never_read_from_outside_the_refs(store):
    """A revision with a slash or dots names no ref: not a file found by walking out of refs/."""
    for revision in ("../../repo.json", "heads/main", "..", "."):
        with pytest.raises(RevisionNotFound):
            store.resolve(REPO, revision)


def test_keep_other_files_without_a_parent_keeps_the_branch_files(store, tmp_path):
    first = store.commit(
        REPO, {"a.txt": a_file(tmp_path, "a.txt", "a")}, "a", parent=store.resolve(REPO)
    )
    store.commit(REPO, {"b.txt": a_file(tmp_path, "b.txt", "b")}, "b", keep_other_files=True)
    assert store.list_files(REPO, "main") == [".gitattributes", "a.txt", "b.txt"]
    assert store.list_files(REPO, first) == [".gitattributes", "a.txt"]


def test_a_commit_message_keeps_its_body_and_description(store, tmp_path):
    store.commit(REPO, {"a.txt": a_file(tmp_path, "a.txt", "a")}, "title\n\nthe body", "described")
    entry = store.log(REPO)[0]
    assert entry.title == "title" and entry.message == "the body\n\ndescribed"


def test_objects_are_read_only_and_one_already_stored_is_not_copied_again(store, tmp_path):
    path = a_file(tmp_path, "a.txt", "content")
    first = store.commit(REPO, {"a.txt": path}, "a")
    obj = repo_dir(store) / "objects" / hashlib.sha256(b"content").hexdigest()
    assert obj.stat().st_mode & 0o777 == 0o444
    inode = obj.stat().st_ino
    store.commit(REPO, {"again.txt": path}, "same content", parent=first)
    assert obj.stat().st_ino == inode  # reused where it is (verified), not written again


def test_a_missing_commit_record_is_named(store, tmp_path):
    first = store.resolve(REPO)
    store.commit(REPO, {"a.txt": a_file(tmp_path, "a.txt", "a")}, "a", parent=first)
    (repo_dir(store) / "commits" / f"{first}.json").unlink()
    with pytest.raises(DamagedStore, match=f"commit record .*{first}.json is missing"):
        store.log(REPO)


def test_a_record_that_matches_its_id_but_is_no_record_is_damage(store):
    """JSON named by its own SHA-1 but without a tree: refused, not read as a commit."""
    no_hash = '{"tree": {"a": {"size": 1}}, "title": "t", "message": "", "created_at": ""}'
    for text in ("[]", '{"tree": []}', '{"tree": {}, "parent": 3, "title": "t"}', no_hash):
        commit_id = hashlib.sha1(text.encode()).hexdigest()
        (repo_dir(store) / "commits" / f"{commit_id}.json").write_text(text)
        (repo_dir(store) / "refs/heads/main").write_text(commit_id)
        with pytest.raises(DamagedStore, match="is damaged"):
            store.list_files(REPO, "main")


def test_damage_names_the_command_that_repairs_it(tmp_path):
    for kind, option in (("dataset", ""), ("model", " --model")):
        store = open_store(f"local:{tmp_path / 'store'}", kind)
        store.create_repo(REPO, private=True)
        folder = store.root / ("datasets" if kind == "dataset" else "models") / REPO
        (folder / "refs/heads/main").write_text("garbage")
        with pytest.raises(DamagedStore) as info:
            store.resolve(REPO)
        assert str(info.value).endswith(
            f"`builder store verify {REPO} --store {store.uri}{option}` reports and repairs"
        )


def test_check_object_tells_missing_damaged_and_intact_apart(tmp_path):
    path = tmp_path / "obj"
    digest = hashlib.sha256(b"abc").hexdigest()
    assert check_object(path, digest, 3) is ObjectState.MISSING
    path.write_bytes(b"abd")
    assert check_object(path, digest, 3) is ObjectState.DAMAGED
    path.write_bytes(b"abcd")
    assert check_object(path, digest, 3) is ObjectState.DAMAGED  # by its size alone
    path.write_bytes(b"abc")
    assert check_object(path, digest, 3) is ObjectState.INTACT


def test_disk_errors_turns_only_disk_errors_into_one_line(tmp_path):
    with pytest.raises(StoreError, match="no space left on"), disk_errors(tmp_path):
        raise OSError(errno.ENOSPC, "full")
    with pytest.raises(FileNotFoundError), disk_errors(tmp_path):  # not a disk problem
        raise FileNotFoundError(errno.ENOENT, "gone")


def test_write_atomic_has_every_byte_in_the_file_before_it_flushes_it(tmp_path, monkeypatch):
    """fsync flushes what the OS has: the content must have left Python's buffer by then."""
    sizes = []
    real_fsync = os.fsync

    def fsync(fd):
        if not Path(os.readlink(f"/proc/self/fd/{fd}")).is_dir():
            sizes.append(os.fstat(fd).st_size)
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    write_atomic(tmp_path / "file", "x" * 1000)
    assert sizes == [1000]


def test_new_folders_of_a_repository_are_flushed_with_it(tmp_path, monkeypatch):
    """A power cut after create_repo keeps the repository: the folders that name it (its
    refs, its namespace, the store's datasets folder) are flushed once it is complete."""
    events = record_flushes_and_renames(monkeypatch)
    store = open_store(f"local:{tmp_path / 'store'}")
    store.create_repo(REPO, private=True)
    monkeypatch.undo()
    folder = repo_dir(store)
    complete = events.index(("rename", str(folder / "repo.json")))
    for needed in (folder / "refs", folder.parent, folder.parent.parent):
        assert ("fsync", str(needed)) in events[complete:], needed


def test_an_object_left_by_a_dead_process_is_flushed_with_its_folder_before_the_record(
    store, tmp_path, monkeypatch
):
    """An object already in the store may have been written by a process that died before
    flushing it or its folder: a commit that reuses it flushes both before its record."""
    content = b"written by a process that died"
    obj = repo_dir(store) / "objects" / hashlib.sha256(content).hexdigest()
    obj.write_bytes(content)
    (tmp_path / "f").write_bytes(content)
    events = record_flushes_and_renames(monkeypatch)
    commit = store.commit(REPO, {"f": tmp_path / "f"}, "reuse")
    monkeypatch.undo()
    record = events.index(("rename", str(repo_dir(store) / "commits" / f"{commit}.json")))
    assert ("fsync", str(obj)) in events[:record]
    assert ("fsync", str(obj.parent)) in events[:record]
    assert json.loads((repo_dir(store) / "commits" / f"{commit}.json").read_text())["tree"]["f"]
