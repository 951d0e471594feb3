"""Damaged stores: every read is verified, and refuses damage with one line naming it.

One flipped byte in each kind of store file (parquet object, manifest.json, README card,
commit record, ref), against every read path (`store show`, `store export`, `store log`,
`builder status`, a stage reading its input): a path that reads the damaged file refuses it
with exit 2 and one line naming the repository, revision and file; a path that does not read
it works as before. Then `store verify --repair`, damaged refs, pushes onto themselves, and the
CLI's own mistakes.
"""

import json
import logging
import shutil
from pathlib import Path

import pytest

from builder.store import DamagedStore, open_store
from tests.helpers import TINY, export_rows, run_cli, write_corpus

NAME = "dmg"
REPO = f"tester/{NAME}-extract"


def recipe_args(store_dir: Path, work: Path, corpus: Path) -> list[str]:
    return ["--set", f"name={NAME}", "--set", f"hub.store=local:{store_dir}",
            "--set", "hub.namespace=tester", "--set", f"work_dir={work}",
            "--set", f"stages.extract.source={corpus}", "--set", "stages.extract.num_proc=1",
            "--set", "stages.filter.num_proc=1"]  # fmt: skip


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A store with `extract` published once (the store is copied by each test)."""
    root = tmp_path_factory.mktemp("published")
    corpus = write_corpus(root / "corpus")
    assert run_cli("run", TINY, "--only", "extract", *recipe_args(root / "s", root / "w", corpus)) == 0
    return root / "s", corpus


@pytest.fixture
def copy(published, tmp_path):
    """This test's own copy of the store and corpus: (store folder, recipe arguments)."""
    store_dir, corpus = published
    shutil.copytree(store_dir, tmp_path / "s")
    shutil.copytree(corpus, tmp_path / "corpus")
    return tmp_path / "s", recipe_args(tmp_path / "s", tmp_path / "w", tmp_path / "corpus")


def repo_dir(store_dir: Path, repo: str = REPO) -> Path:
    return store_dir / "datasets" / repo


def head_record(store_dir: Path) -> tuple[str, dict]:
    head = (repo_dir(store_dir) / "refs/heads/main").read_text().strip()
    return head, json.loads((repo_dir(store_dir) / "commits" / f"{head}.json").read_text())


def file_of(store_dir: Path, kind: str) -> tuple[Path, str]:
    """The file of `kind` in the head revision, and what an error about it must name."""
    head, record = head_record(store_dir)
    if kind == "ref":
        path = repo_dir(store_dir) / "refs/heads/main"
        return path, str(path)
    if kind == "commit record":
        path = repo_dir(store_dir) / "commits" / f"{head}.json"
        return path, str(path)
    name = {"parquet object": "data/train-00000-of-00001.parquet", "manifest": "manifest.json",
            "card": "README.md"}[kind]  # fmt: skip
    return repo_dir(store_dir) / "objects" / record["tree"][name]["sha256"], f"'{name}'"


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.chmod(0o644)
    path.write_bytes(bytes(data))


def read_paths(store_dir: Path, args: list[str], tmp: Path) -> dict:
    uri = f"local:{store_dir}"
    return {
        "store show": ["store", "show", REPO, "--store", uri],
        "store export": ["store", "export", REPO, tmp / "out.jsonl", "--store", uri],
        "store log": ["store", "log", REPO, "--store", uri],
        "builder status": ["status", TINY, *args],
        "stage input": ["run", TINY, "--only", "filter", *args],
    }


# Which read paths read which kind of file; the others must not notice the damage.
READS = {
    "ref": {"store show", "store export", "store log", "builder status", "stage input"},
    "commit record": {"store show", "store export", "store log", "builder status", "stage input"},
    "manifest": {"store show", "store export", "builder status", "stage input"},
    "card": {"store show"},
    "parquet object": {"store show", "store export", "stage input"},
}


@pytest.mark.parametrize("kind", list(READS))
def test_one_flipped_byte_is_refused_by_every_read_path_that_reads_it(kind, copy, tmp_path, caplog):
    store_dir, args = copy
    path, named = file_of(store_dir, kind)
    head, _ = head_record(store_dir)
    flip_byte(path)
    for read_path, argv in read_paths(store_dir, args, tmp_path).items():
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            code = run_cli(*argv)
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        if read_path in READS[kind]:
            assert code == 2, f"{read_path} read a damaged {kind} without error"
            assert len(errors) == 1 and "\n" not in errors[0], (read_path, errors)
            assert REPO in errors[0] and named in errors[0], (read_path, errors[0])
            assert head in errors[0] or "branch 'main'" in errors[0], (read_path, errors[0])
        else:
            assert code == 0 and not errors, (read_path, errors)
    # A refused export leaves no output file behind, not even an empty one.
    assert (tmp_path / "out.jsonl").exists() == ("store export" not in READS[kind])


def test_a_damaged_shard_is_not_exported_or_read_by_the_next_stage(copy, tmp_path, caplog):
    """The reported failure: a flipped byte gave a valid-looking parquet with fewer rows."""
    store_dir, args = copy
    path, _ = file_of(store_dir, "parquet object")
    out = tmp_path / "out.jsonl"
    out.write_text("an earlier export\n")
    flip_byte(path)
    assert run_cli("store", "export", REPO, out, "--store", f"local:{store_dir}") == 2
    assert out.read_text() == "an earlier export\n"  # untouched by the failed export
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert run_cli("run", TINY, "--only", "filter", *args) == 2
    assert not open_store(f"local:{store_dir}").repo_exists(f"tester/{NAME}-filter")


def test_reads_hash_each_object_once_per_process(copy, monkeypatch):
    from builder.store import files

    store_dir, _ = copy
    store = open_store(f"local:{store_dir}")
    hashed = []
    monkeypatch.setattr(files, "file_sha256", lambda p, real=files.file_sha256: hashed.append(p) or real(p))
    names = [n for n in store.list_files(REPO, "main") if n.endswith(".parquet")]
    for _ in range(3):
        store.fetch(REPO, "main", names)
    assert sorted(hashed) == sorted(store.fetch(REPO, "main", names).values())
    # Changed in place after the check: checked again, and refused.
    flip_byte(Path(store.fetch(REPO, "main", names[:1])[names[0]]))
    with pytest.raises(DamagedStore, match="does not match its SHA-256"):
        store.fetch(REPO, "main", names[:1])


@pytest.mark.parametrize("kind", ["truncated parquet", "garbled manifest", "garbled commit", "missing file"])
def test_damaged_files_are_one_line_naming_them(kind, copy, tmp_path, caplog):
    store_dir, _ = copy
    head, record = head_record(store_dir)
    objects = repo_dir(store_dir) / "objects"
    if kind == "truncated parquet":
        target = objects / record["tree"]["data/train-00000-of-00001.parquet"]["sha256"]
        target.chmod(0o644)
        target.write_bytes(target.read_bytes()[:100])
        named = "data/train-00000-of-00001.parquet"
    elif kind == "garbled manifest":
        target = objects / record["tree"]["manifest.json"]["sha256"]
        target.chmod(0o644)
        target.write_text("{not json")
        named = "manifest.json"
    elif kind == "garbled commit":
        target = repo_dir(store_dir) / "commits" / f"{head}.json"
        target.write_text('{"parent": ')
        named = str(target)
    else:
        (objects / record["tree"]["rejected/rejected-00000-of-00001.parquet"]["sha256"]).unlink()
        named = "rejected/rejected-00000-of-00001.parquet"
    out = tmp_path / "out.jsonl"
    for split in ("train", "rejected"):
        out.write_text("kept\n")
        caplog.clear()
        code = run_cli("store", "export", REPO, out, "--store", f"local:{store_dir}", "--split", split)
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        if split == "train" and kind == "missing file":
            assert code == 0  # the other split is intact and readable
            continue
        if split == "rejected" and kind == "truncated parquet":
            continue
        assert code == 2 and len(errors) == 1 and named in errors[0] and REPO in errors[0]
        assert out.read_text() == "kept\n"


def test_hub_store_garbled_manifest_and_truncated_parquet_are_one_line(fake_hub, tmp_path, monkeypatch, caplog):
    """Files published damaged (their hash matches): the reader says what it cannot read."""
    monkeypatch.setenv("HF_TOKEN", fake_hub.token)
    hub = open_store("hf")
    hub.create_repo("tester/garbled", private=False)
    (tmp_path / "manifest.json").write_text('{"splits": ')
    (tmp_path / "t.parquet").write_bytes(b"PAR1" + b"\0" * 50)
    files = {"manifest.json": tmp_path / "manifest.json", "data/train-00000-of-00001.parquet": tmp_path / "t.parquet"}
    bad_manifest = hub.commit("tester/garbled", files, "garbled")
    assert run_cli("store", "show", "tester/garbled", "--store", "hf") == 2
    assert f"tester/garbled@{bad_manifest}: manifest.json is not valid JSON" in caplog.text
    hub.commit("tester/garbled", {"data/train-00000-of-00001.parquet": tmp_path / "t.parquet"}, "no manifest")
    caplog.clear()
    assert run_cli("store", "export", "tester/garbled", tmp_path / "o.jsonl", "--store", "hf") == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "data/train-00000-of-00001.parquet is not a readable parquet file" in errors[0]


def test_hub_downloads_are_verified_and_a_damaged_cached_copy_is_fetched_again(fake_hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", fake_hub.token)
    hub = open_store("hf")
    hub.create_repo("tester/verified-downloads", private=False)
    data = bytes(range(256)) * 100  # an LFS file (binary, > 10 KiB)
    (tmp_path / "w.bin").write_bytes(data)
    (tmp_path / "notes.txt").write_text("a regular file\n")
    revision = hub.commit("tester/verified-downloads", {"w.bin": tmp_path / "w.bin", "notes.txt": tmp_path / "notes.txt"}, "files")
    local = hub.fetch("tester/verified-downloads", revision, ["w.bin", "notes.txt"])
    for name in ("w.bin", "notes.txt"):
        flip_byte(Path(local[name]).resolve())  # the cached blob
    again = hub.fetch("tester/verified-downloads", revision, ["w.bin", "notes.txt"])
    assert again["w.bin"].read_bytes() == data and again["notes.txt"].read_text() == "a regular file\n"
    # Damaged on the way, every time: refused.
    for name in ("w.bin", "notes.txt"):
        Path(again[name]).resolve().unlink()
    fake_hub.fault("GET", r"/resolve/.*/w\.bin$", "flip")
    try:
        with pytest.raises(DamagedStore, match=f"tester/verified-downloads@{revision}: file 'w.bin' is damaged"):
            hub.fetch("tester/verified-downloads", revision, ["w.bin"])
    finally:
        fake_hub.clear_faults()


def test_an_empty_branch_ref_is_an_error_never_a_new_root(copy, tmp_path, caplog):
    store_dir, args = copy
    corpus = tmp_path / "corpus"
    (corpus / "more.py").write_text('def twice(x):\n    """Double."""\n    return 2 * x\n')
    assert run_cli("run", TINY, "--only", "extract", *args) == 0
    store = open_store(f"local:{store_dir}")
    assert len(store.log(REPO)) == 3
    commits = sorted(p.name for p in (repo_dir(store_dir) / "commits").iterdir())
    ref = repo_dir(store_dir) / "refs/heads/main"
    head = ref.read_text()
    ref.write_text("")
    (corpus / "third.py").write_text('def thrice(x):\n    """Triple."""\n    return 3 * x\n')
    for argv in (["run", TINY, "--only", "extract", *args], ["store", "log", REPO, "--store", f"local:{store_dir}"]):
        caplog.clear()
        assert run_cli(*argv) == 2
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and f"{REPO}: branch 'main' is damaged: {ref} is empty" in errors[0]
    assert sorted(p.name for p in (repo_dir(store_dir) / "commits").iterdir()) == commits  # no new root
    assert run_cli("store", "verify", REPO, "--store", f"local:{store_dir}", "--repair") == 0
    assert ref.read_text() == head and len(store.log(REPO)) == 3
    assert run_cli("run", TINY, "--only", "extract", *args) == 0
    assert store.log(REPO)[0].parent == head and len(store.log(REPO)) == 4


def test_verify_reports_and_repair_restores_readable_files(copy, tmp_path, capsys):
    store_dir, args = copy
    uri = f"local:{store_dir}"
    path, _ = file_of(store_dir, "parquet object")
    damaged_head, _ = head_record(store_dir)
    assert run_cli("store", "verify", REPO, "--store", uri) == 0
    flip_byte(path)
    (repo_dir(store_dir) / "objects" / ".abc.99999999.0000.tmp").write_bytes(b"left by a kill")
    capsys.readouterr()
    assert run_cli("store", "verify", REPO, "--store", uri) == 2
    report = capsys.readouterr().out
    assert "file 'data/train-00000-of-00001.parquet'" in report and "temporary file" in report
    assert run_cli("store", "verify", REPO, "--store", uri, "--repair") == 0
    assert (repo_dir(store_dir) / "damaged/objects" / path.name).is_file()  # kept aside
    assert not (repo_dir(store_dir) / "objects" / ".abc.99999999.0000.tmp").exists()
    store = open_store(uri)
    restored = store.log(REPO)
    assert restored[0].parent == damaged_head and "Restore the files of" in restored[0].title
    assert store.read_text(REPO, "main", "manifest.json") is None  # the initial commit's files
    assert run_cli("store", "verify", REPO, "--store", uri) == 0
    # The stage is stale now: the next run publishes it again, with intact files.
    assert run_cli("run", TINY, "--only", "extract", *args) == 0
    assert run_cli("store", "verify", REPO, "--store", uri) == 0
    assert sorted(r["name"] for r in export_rows(uri, REPO, tmp_path)) == ["area", "clamp", "fetch"]


def test_push_onto_itself_is_refused(copy, caplog):
    store_dir, _ = copy
    uri = f"local:{store_dir}"
    head = open_store(uri).resolve(REPO)
    assert run_cli("store", "push", REPO, "--store", uri, "--to", uri) == 2
    assert f"cannot push {REPO} onto itself" in caplog.text
    assert open_store(uri).resolve(REPO) == head
    # Another repository of the same store is fine, and pushing again adds nothing.
    for _ in range(2):
        assert run_cli("store", "push", REPO, "--store", uri, "--to", uri, "--to-repo", "tester/copy") == 0
    assert len(open_store(uri).log("tester/copy")) == 2


@pytest.mark.parametrize("where", ["missing folder", "directory"])
def test_export_to_a_missing_folder_or_a_directory_is_one_line(where, copy, tmp_path, caplog):
    store_dir, _ = copy
    output = tmp_path / "absent" / "out.jsonl" if where == "missing folder" else tmp_path
    assert run_cli("store", "export", REPO, output, "--store", f"local:{store_dir}") == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    expected = "does not exist" if where == "missing folder" else "it is a directory"
    assert len(errors) == 1 and str(output) in errors[0] and expected in errors[0]
