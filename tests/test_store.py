"""The store contract, run against both backends: `local:DIR`, and `hf` through the real
huggingface_hub client over HTTP against the fake Hub in tests/fake_hub.py."""

import itertools

import pytest

from builder.errors import CommitConflict, RepoNotFound, RevisionNotFound, StoreError
from builder.store import open_store

_names = itertools.count()


@pytest.fixture(params=["local", "hf"])
def store(request, tmp_path, monkeypatch):
    if request.param == "local":
        return open_store(f"local:{tmp_path / 'store'}")
    hub = request.getfixturevalue("fake_hub")
    monkeypatch.setenv("HF_TOKEN", hub.token)
    return open_store("hf")


@pytest.fixture
def repo(store, request):
    name = f"tester/store-{request.node.name.replace('[', '-').strip(']')}-{next(_names)}"
    store.create_repo(name, private=False)
    return name


def files(tmp_path, **contents):
    paths = {}
    for name, text in contents.items():
        path = tmp_path / "src" / name.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        paths[name.replace("__", "/")] = path
    return paths


def test_create_repo_makes_an_initial_commit_and_is_idempotent(store, repo):
    head = store.resolve(repo)
    assert len(head) == 40
    store.create_repo(repo, private=False)
    assert store.resolve(repo) == head
    assert store.repo_exists(repo)
    assert not store.repo_exists("tester/never-created")


def test_commit_replaces_the_whole_tree_at_once(store, repo, tmp_path):
    first = store.commit(
        repo,
        files(tmp_path, **{"data__train.parquet": b"PAR1" * 5000, "README.md": "card v1"}),
        "first",
        parent=store.resolve(repo),
    )
    assert store.resolve(repo) == first
    assert set(store.list_files(repo, first)) >= {"data/train.parquet", "README.md"}
    second = store.commit(
        repo,
        files(tmp_path, **{"README.md": "card v2", "manifest.json": "{}"}),
        "second",
        parent=first,
    )
    assert "data/train.parquet" not in store.list_files(repo, second)  # deleted in the same commit
    assert store.read_text(repo, second, "README.md") == "card v2"
    assert store.read_text(repo, first, "README.md") == "card v1"  # old revisions stay readable
    assert (
        store.fetch(repo, first, ["data/train.parquet"])["data/train.parquet"].read_bytes()
        == b"PAR1" * 5000
    )
    assert store.read_text(repo, second, "missing.txt") is None


def test_stale_parent_is_refused_and_nothing_is_written(store, repo, tmp_path):
    start = store.resolve(repo)
    store.commit(repo, files(tmp_path, **{"a.txt": "from writer 1"}), "one", parent=start)
    head = store.resolve(repo)
    with pytest.raises(CommitConflict):
        store.commit(repo, files(tmp_path, **{"b.txt": "from writer 2"}), "two", parent=start)
    assert store.resolve(repo) == head
    assert "b.txt" not in store.list_files(repo, head)


def test_log_refs_tags_and_revision_lookup(store, repo, tmp_path):
    initial = store.resolve(repo)
    one = store.commit(
        repo, files(tmp_path, **{"a.txt": "1"}), "add a\n\nbody text", parent=initial
    )
    two = store.commit(repo, files(tmp_path, **{"a.txt": "2"}), "change a", parent=one)
    history = store.log(repo)
    assert [c.id for c in history] == [two, one, initial]
    assert history[0].title == "change a"
    assert history[0].parent == one
    store.tag(repo, "v1", one)
    refs = store.refs(repo)
    assert refs.branches["main"] == two and refs.tags["v1"] == one
    assert store.resolve(repo, "v1") == one
    assert store.resolve(repo, one) == one
    assert [c.id for c in store.log(repo, "v1")] == [one, initial]


def test_missing_repo_and_revision_are_named(store, repo):
    with pytest.raises(RevisionNotFound, match="no-such-branch"):
        store.resolve(repo, "no-such-branch")
    with pytest.raises(RepoNotFound, match="tester/absent"):
        store.resolve("tester/absent")
    with pytest.raises(StoreError):
        store.fetch(repo, store.resolve(repo), ["not/there.parquet"])


def test_local_store_rejects_bad_repo_ids(tmp_path):
    store = open_store(f"local:{tmp_path}")
    for bad in ("noslash", "../escape/x", "a/b/c"):
        with pytest.raises(StoreError, match="invalid repo id"):
            store.create_repo(bad, private=True)
    with pytest.raises(StoreError, match="unknown store"):
        open_store("s3://bucket")


def test_model_repositories_and_updating_one_file(store_uri, tmp_path):
    """Model repos live beside dataset repos; a card can be updated next to the weights."""
    models = open_store(store_uri, repo_type="model")
    models.create_repo("tester/some-model", private=True)
    assert not open_store(store_uri).repo_exists("tester/some-model")  # not a dataset
    first = models.commit(
        "tester/some-model",
        files(tmp_path, **{"README.md": "---\nlicense: mit\n---\n# card\n", "model.safetensors": b"\0" * 20000}),
        "weights", parent=models.resolve("tester/some-model"),
    )
    second = models.commit("tester/some-model", files(tmp_path, **{"README.md": "# new card"}),
                           "card", parent=first, keep_other_files=True)
    assert set(models.list_files("tester/some-model", second)) >= {"README.md", "model.safetensors"}
    assert models.read_text("tester/some-model", second, "README.md") == "# new card"
    with pytest.raises(StoreError, match="unknown repository type"):
        open_store(store_uri, repo_type="space")


def test_eval_scores_go_into_the_model_card(store_uri, tmp_path):
    from builder.evaluation.eval_card import write_model_index

    models = open_store(store_uri, repo_type="model")
    models.create_repo("tester/scored", private=True)
    models.commit("tester/scored", files(tmp_path, **{"README.md": "---\nlicense: mit\n---\n# Scored\n",
                                                      "config.json": "{}"}),
                  "model", parent=models.resolve("tester/scored"))
    manifest = {"benchmarks": {"humaneval+": {"version": "v0.1.9", "scores": {
        "base": {"pass@1": 0.726}, "plus": {"pass@1": 0.634}}}}}
    revision = write_model_index(store_uri, "tester/scored", manifest)
    card = models.read_text("tester/scored", revision, "README.md")
    assert "license: mit" in card and "# Scored" in card
    assert "HumanEval+" in card and "63.4" in card and "72.6" in card
    assert "config.json" in models.list_files("tester/scored", revision)
    assert write_model_index(store_uri, "tester/not-a-model", manifest) is None
    assert write_model_index(store_uri, str(tmp_path), manifest) is None  # a local folder
