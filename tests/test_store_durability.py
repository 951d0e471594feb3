"""A local commit, and a stage's publish, cut at every step: by an exception, or by the
process dying on the spot (a forked child that `os._exit`s, like `kill -9`). The store is at
the old head or the new one, never between; the rerun publishes exactly once. Also: what is
flushed before what (power loss), and full or unwritable disks."""

import contextlib
import errno
import itertools
import json
import logging
import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

from builder.store import DiskError, open_store
from builder.store.repair import verify_repo
from tests.helpers import TINY, export_rows, record_flushes_and_renames, run_cli, write_corpus

REPO = "tester/crash"


class Crash(BaseException):
    """A crash at a chosen step: nothing in the code under test catches it."""


@contextmanager
def crash_at(step: int | None, kill: bool = False, steps: list | None = None):
    """Count the steps of a write (flush, rename, make a folder, write a file); do not make
    step number `step`: raise Crash, or with `kill` end the process there and then. Flushes
    are counted but not made (they only matter to a power cut, and are slow): a killed
    process loses nothing it wrote."""
    counter = itertools.count()

    def wrap(name, real):
        def step_of_a_write(*args, **kwargs):
            number = next(counter)
            if steps is not None:
                steps.append(name)
            if number == step:
                if kill:
                    os._exit(137)
                raise Crash(f"crash at step {number} ({name})")
            return None if name == "fsync" else real(*args, **kwargs)

        return step_of_a_write

    with pytest.MonkeyPatch.context() as patch:
        for name in ("fsync", "replace", "mkdir"):
            patch.setattr(os, name, wrap(name, getattr(os, name)))
        patch.setattr(Path, "write_text", wrap("write_text", Path.write_text))
        yield


def in_child(work) -> int:
    """Run `work()` in a forked child; its exit code (137: it died at the chosen step)."""
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            work()
            code = 0
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*") if p.is_file() and p.name != ".lock"]


# -- a local commit ------------------------------------------------------------------------


def a_repo(root: Path):
    """A repository with one commit on top of its initial one, and the files of the next."""
    store = open_store(f"local:{root / 'store'}")
    store.create_repo(REPO, private=True)
    (root / "src").mkdir(parents=True)
    (root / "src/old.txt").write_text("first version\n")
    store.commit(REPO, {"old.txt": root / "src/old.txt"}, "first", parent=store.resolve(REPO))
    files = {"data/train.parquet": root / "src/train.parquet", "README.md": root / "src/README.md"}
    files["data/train.parquet"].write_bytes(os.urandom(100_000))
    files["README.md"].write_text("# card\n")
    return store, files


@pytest.mark.parametrize("kill", [False, True], ids=["exception", "kill"])
def test_a_crash_at_any_step_of_a_commit_leaves_the_old_head_or_the_new(tmp_path, kill):
    steps: list[str] = []
    store, files = a_repo(tmp_path / "count")
    with crash_at(None, steps=steps):
        store.commit(REPO, files, "second", parent=store.resolve(REPO))
    assert len(steps) >= 10 and {"fsync", "replace"} <= set(steps)

    outcomes = set()
    for step in range(len(steps)):
        root = tmp_path / f"step{step}"
        store, files = a_repo(root)
        old = store.resolve(REPO)
        if kill:
            def work(step=step, store=store, files=files, old=old):
                with crash_at(step, kill=True):
                    store.commit(REPO, files, "second", parent=old)

            assert in_child(work) == 137
        else:
            with pytest.raises(Crash), crash_at(step):
                store.commit(REPO, files, "second", parent=old)
        store = open_store(f"local:{root / 'store'}")
        head = store.resolve(REPO)
        if head != old:  # then it is the new commit, whole
            assert store.log(REPO)[0].parent == old
            assert set(store.list_files(REPO, head)) == {".gitattributes", *files}
        outcomes.add("new" if head != old else "old")
        for name, local in store.fetch(REPO, head, store.list_files(REPO, head)).items():
            assert name not in files or local.read_bytes() == files[name].read_bytes()
        if head == old:  # the rerun, as the runner does it: publish unless already published
            with crash_at(None):
                store.commit(REPO, files, "second", parent=old)
        assert [c.title for c in store.log(REPO)] == ["second", "first", "initial commit"]
        found = verify_repo(store, REPO, repair=True)
        assert all("temporary file" in p for p in found.problems), found.problems
        assert not temp_files(root / "store")
        assert not found.problems or kill  # an exception removes its temporary files itself
    assert outcomes == {"old", "new"}  # the last step (flushing the ref's folder) is after the move


# -- a stage's publish ---------------------------------------------------------------------


def stage_args(root: Path, corpus: Path) -> list[str]:
    return ["--set", "name=crash", "--set", f"hub.store=local:{root / 'store'}",
            "--set", "hub.namespace=tester", "--set", f"work_dir={root / 'work'}",
            "--set", f"stages.extract.source={corpus}", "--set", "stages.extract.num_proc=1"]  # fmt: skip


@contextmanager
def crash_in_publish(step, kill=False, steps=None):
    """Crash at step `step` of `builder.pipeline.publish.publish`, as the runner calls it."""
    from builder.pipeline import step_runner

    real = step_runner.publish

    def publish(*args, **kwargs):
        with crash_at(step, kill, steps):
            return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(step_runner, "publish", publish)
        yield


@pytest.mark.parametrize(
    "kill", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["exception", "kill"]
)
def test_a_crash_at_any_step_of_a_stage_publish_then_the_rerun_publishes_once(tmp_path, kill, monkeypatch):
    from builder.pipeline import step_runner

    # Faster: fsyncs only matter to a power cut, and the versions of 700 packages are the same.
    monkeypatch.setattr(os, "fsync", lambda fd: None)
    versions = step_runner.software_versions()
    monkeypatch.setattr(step_runner, "software_versions", lambda: versions)
    corpus = write_corpus(tmp_path / "corpus")
    steps: list[str] = []
    reference = tmp_path / "reference"
    with crash_in_publish(None, steps=steps):
        assert run_cli("run", TINY, "--only", "extract", *stage_args(reference, corpus)) == 0
    expected = export_rows(f"local:{reference / 'store'}", "tester/crash-extract", reference)
    assert len(steps) >= 20 and "write_text" in steps, steps

    repo = "tester/crash-extract"
    for step in range(len(steps)):
        root = tmp_path / f"step{step}"
        args = stage_args(root, corpus)
        if kill:
            def work(step=step, args=args):
                with crash_in_publish(step, kill=True):
                    run_cli("run", TINY, "--only", "extract", *args)

            assert in_child(work) == 137
        else:
            with pytest.raises(Crash), crash_in_publish(step):
                run_cli("run", TINY, "--only", "extract", *args)
        store = open_store(f"local:{root / 'store'}")
        if store.repo_exists(repo):  # created; then nothing published yet, or all of it
            history = store.log(repo)
            assert len(history) in (1, 2)
            manifest = store.read_text(repo, history[0].id, "manifest.json")
            assert (manifest is None) == (len(history) == 1)
        assert run_cli("run", TINY, "--only", "extract", *args) == 0
        assert len(store.log(repo)) == 2  # the initial commit and exactly one publish
        assert export_rows(f"local:{root / 'store'}", repo, root) == expected


# -- power loss: what is on disk before what -----------------------------------------------


def test_objects_and_their_folder_are_flushed_before_the_commit_record(tmp_path, monkeypatch):
    store, files = a_repo(tmp_path)
    repo_dir = tmp_path / "store/datasets" / REPO
    events = record_flushes_and_renames(monkeypatch)
    commit = store.commit(REPO, files, "second", parent=store.resolve(REPO))
    monkeypatch.undo()

    def when(kind: str, path: Path) -> int:
        return events.index((kind, str(path)))

    record = repo_dir / "commits" / f"{commit}.json"
    ref = repo_dir / "refs/heads/main"
    tree = json.loads(record.read_text())["tree"]
    for entry in tree.values():
        obj = repo_dir / "objects" / entry["sha256"]
        flushed = [i for i, (kind, path) in enumerate(events)
                   if kind == "fsync" and Path(path).name.lstrip(".").startswith(obj.name)]  # fmt: skip
        assert flushed and flushed[0] < when("rename", record), f"object {obj.name} not flushed"
    # Each object's name in its folder is on disk too: the folder flushed after its rename.
    folder_flushes = [i for i, e in enumerate(events) if e == ("fsync", str(repo_dir / "objects"))]
    for entry in tree.values():
        renamed = ("rename", str(repo_dir / "objects" / entry["sha256"]))
        if renamed in events:  # a new object (an existing one was flushed in place)
            after = [i for i in folder_flushes if i > events.index(renamed)]
            assert after and after[0] < when("rename", record)
    assert when("rename", record) < when("fsync", repo_dir / "commits") < when("rename", ref)
    assert when("rename", ref) < when("fsync", repo_dir / "refs/heads")


# -- full and unwritable disks -------------------------------------------------------------


def test_a_full_disk_is_one_line_and_leaves_nothing_behind(tmp_path, monkeypatch):
    store, files = a_repo(tmp_path)
    head = store.resolve(REPO)
    real_copy = shutil.copyfileobj

    def copy_until_full(source, target, length=0):
        target.write(source.read(1000))  # a part of the file is written, then the disk is full
        target.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(shutil, "copyfileobj", copy_until_full)
    with pytest.raises(DiskError) as raised:
        store.commit(REPO, files, "second", parent=head)
    objects = tmp_path / "store/datasets" / REPO / "objects"
    assert str(raised.value) == f"no space left on {objects}"
    assert store.resolve(REPO) == head and not temp_files(tmp_path / "store")
    monkeypatch.setattr(shutil, "copyfileobj", real_copy)
    store.commit(REPO, files, "second", parent=head)
    assert len(store.log(REPO)) == 3


@pytest.mark.parametrize("error, message", [(errno.EROFS, "read-only file system"),
                                            (errno.EACCES, "permission denied")])  # fmt: skip
def test_an_unwritable_store_is_one_line(tmp_path, monkeypatch, error, message):
    from builder.store import files as store_files

    store, files = a_repo(tmp_path)
    head = store.resolve(REPO)

    def refuse(path, mode="r", *args, **kwargs):
        if "x" in mode:
            raise OSError(error, os.strerror(error), str(path))
        return open(path, mode, *args, **kwargs)

    monkeypatch.setattr(store_files, "open", refuse, raising=False)
    with pytest.raises(DiskError, match=f"cannot write to .*/objects: {message}$"):
        store.commit(REPO, files, "second", parent=head)
    assert store.resolve(REPO) == head


def test_a_full_disk_during_a_stage_publish_then_a_rerun(tmp_path, monkeypatch, caplog):
    corpus = write_corpus(tmp_path / "corpus")
    args = stage_args(tmp_path, corpus)
    real_copy = shutil.copyfileobj

    def full(source, target, length=0):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(shutil, "copyfileobj", full)
    with caplog.at_level(logging.ERROR):
        assert run_cli("run", TINY, "--only", "extract", *args) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].startswith("no space left on ") and "\n" not in errors[0]
    store = open_store(f"local:{tmp_path / 'store'}")
    assert len(store.log("tester/crash-extract")) == 1  # created, nothing published
    assert not temp_files(tmp_path / "store")
    monkeypatch.setattr(shutil, "copyfileobj", real_copy)
    assert run_cli("run", TINY, "--only", "extract", *args) == 0
    assert len(store.log("tester/crash-extract")) == 2


@contextmanager
def mounted_tmpfs(mount: Path, size: str):
    """A real filesystem of `size` (tmpfs), where mounting one is allowed (root)."""
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                          capture_output=True, check=False)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


@pytest.fixture
def tiny_disk(tmp_path):
    with mounted_tmpfs(tmp_path / "tiny", "256k") as mount:
        yield mount


@pytest.mark.parametrize("where", ["full", "not a folder"])
def test_a_work_dir_that_is_full_or_unusable_is_one_line_naming_it(where, tmp_path, caplog):
    corpus = write_corpus(tmp_path / "corpus")
    with contextlib.ExitStack() as stack:
        if where == "full":
            work = stack.enter_context(mounted_tmpfs(tmp_path / "full", "16k"))
            expected = f"no space left on {work}"
        else:
            work = Path("/proc/nope")
            expected = f"cannot use work_dir {work}: no such folder"
        args = [*stage_args(tmp_path, corpus), "--set", f"work_dir={work}"]
        with caplog.at_level(logging.ERROR):
            assert run_cli("run", TINY, "--only", "extract", *args) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [expected]


def test_a_really_full_disk(tiny_disk, tmp_path):
    store = open_store(f"local:{tiny_disk}")
    store.create_repo(REPO, private=True)
    head = store.resolve(REPO)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(400_000))
    with pytest.raises(DiskError, match="^no space left on .*/objects$"):
        store.commit(REPO, {"big.bin": big}, "too big", parent=head)
    assert store.resolve(REPO) == head and not temp_files(tiny_disk)
    small = tmp_path / "small.txt"
    small.write_text("fits\n")
    store.commit(REPO, {"small.txt": small}, "fits", parent=head)
    assert store.read_text(REPO, "main", "small.txt") == "fits\n"
