"""What the publisher promises beyond a plain publish, each written down because a mutation of
the code that keeps it went unnoticed (benchmarks/mutation.py): a branch of its own made on
the way (training checkpoints), a race lost to another run refused, private unless said, a
full disk as one line, a manifest that is not an object named as damage, and the kind of
what was published reported even for manifests from before kinds existed."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from builder.errors import CommitConflict
from builder.pipeline.publish import publish, read_manifest, update_card
from builder.store import DamagedStore, DiskError, open_store
from tests.helpers import TINY, run_cli, write_corpus

REPO = "tester/published"


def folder_with(tmp_path: Path, name: str = "out") -> Path:
    folder = tmp_path / name
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "rows.txt").write_text("rows")
    return folder


def test_a_branch_of_its_own_is_made_from_main_and_takes_the_commit(tmp_path):
    store = open_store(f"local:{tmp_path / 'store'}")
    first = publish(store, REPO, folder_with(tmp_path, "a"), {"n": 1}, "card", "first",
                    branch="step-1")  # fmt: skip
    main = store.resolve(REPO)
    assert store.resolve(REPO, "step-1") == first and store.log(REPO, "step-1")[1].id == main
    second = publish(store, REPO, folder_with(tmp_path, "b"), {"n": 2}, "card", "second",
                     branch="step-1")  # fmt: skip
    assert store.log(REPO, "step-1")[1].id == first and store.resolve(REPO, "step-1") == second
    assert store.resolve(REPO) == main  # main untouched


def test_a_branch_whose_commit_never_lands_shows_no_revision_s_files(tmp_path, monkeypatch):
    """A run that dies between making its branch and committing to it leaves a branch at the
    repository's first (empty) commit: never main's files passed off as that checkpoint's."""
    store = open_store(f"local:{tmp_path / 'store'}")
    publish(store, REPO, folder_with(tmp_path, "a"), {"n": 1}, "card", "first")
    main = publish(store, REPO, folder_with(tmp_path, "b"), {"n": 2}, "card", "second",
                   parent=store.resolve(REPO))  # fmt: skip
    assert len(store.log(REPO)) == 3 and "manifest.json" in store.list_files(REPO, main)

    def dies(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(type(store), "commit", dies)
    with pytest.raises(KeyboardInterrupt):
        publish(store, REPO, folder_with(tmp_path, "c"), {"n": 3}, "card", "step", branch="step-9")
    assert store.resolve(REPO, "step-9") == store.log(REPO)[-1].id
    assert not [f for f in store.list_files(REPO, "step-9") if f != ".gitattributes"]


def test_a_new_repository_published_by_another_run_meanwhile_is_a_conflict(tmp_path):
    store = open_store(f"local:{tmp_path / 'store'}")
    publish(store, REPO, folder_with(tmp_path, "a"), {"n": 1}, "card", "theirs")
    head = store.resolve(REPO)
    with pytest.raises(CommitConflict, match="published by another run meanwhile"):
        publish(store, REPO, folder_with(tmp_path, "b"), {"n": 2}, "card", "ours")  # planned new
    assert store.resolve(REPO) == head


def test_a_repository_is_private_unless_said(tmp_path):
    store = open_store(f"local:{tmp_path / 'store'}")
    publish(store, REPO, folder_with(tmp_path), {"n": 1}, "card", "first")
    info = json.loads((store.root / "datasets" / REPO / "repo.json").read_text())
    assert info["private"] is True


def test_a_full_disk_while_writing_the_manifest_or_a_card_is_one_line(tmp_path, monkeypatch):
    store = open_store(f"local:{tmp_path / 'store'}")
    publish(store, REPO, folder_with(tmp_path, "a"), {"n": 1}, "card", "first")

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    second = folder_with(tmp_path, "b")
    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(DiskError, match="no space left on"):
        publish(store, REPO, second, {"n": 2}, "card", "second", parent=store.resolve(REPO))
    with pytest.raises(DiskError, match="no space left on"):
        update_card(store, REPO, lambda card: card + "\nmore", "card")


@pytest.mark.parametrize("text", ["[1, 2]", '"a string"', "{not json"])
def test_a_manifest_that_is_not_a_json_object_is_damage(tmp_path, text):
    store = open_store(f"local:{tmp_path / 'store'}")
    store.create_repo(REPO, private=True)
    (tmp_path / "manifest.json").write_text(text)
    head = store.commit(REPO, {"manifest.json": tmp_path / "manifest.json"}, "bad manifest")
    with pytest.raises(DamagedStore, match="manifest.json is not"):
        read_manifest(store, REPO, head)


def test_status_reports_the_kind_of_what_was_published(tmp_path, capsys):
    args = ["--set", "name=kinds", "--set", f"hub.store=local:{tmp_path / 'store'}",
            "--set", "hub.namespace=tester", "--set", f"work_dir={tmp_path / 'work'}",
            "--set", f"stages.extract.source={write_corpus(tmp_path / 'corpus')}",
            "--set", "stages.extract.num_proc=1"]  # fmt: skip
    assert run_cli("run", TINY, "--only", "extract", *args) == 0

    def kind() -> str:
        capsys.readouterr()
        assert run_cli("status", TINY, *args, "--json") == 0
        return {e["stage"]: e for e in json.loads(capsys.readouterr().out)}["extract"]["kind"]

    assert kind() == "dataset"
    store = open_store(f"local:{tmp_path / 'store'}")
    head = store.resolve("tester/kinds-extract")
    manifest = json.loads(store.read_text("tester/kinds-extract", head, "manifest.json"))
    del manifest["kind"]  # as published before manifests had kinds
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    store.commit("tester/kinds-extract", {"manifest.json": tmp_path / "manifest.json"}, "old",
                 parent=head, keep_other_files=True)  # fmt: skip
    assert kind() == "dataset"
