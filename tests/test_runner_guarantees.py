"""What the step runner promises beyond a plain run, each written down because a mutation of the
code that keeps it went unnoticed (benchmarks/mutation.py): fingerprints that do not drift,
checkpoints that never mix chunks cut differently, one run of a stage at a time, leftovers
cleaned, the revisions a run ends with, and executors closed by whoever made them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import ClassVar

import pytest

from builder.errors import StageError
from builder.pipeline import step_runner
from builder.pipeline.checkpoint import Checkpoint
from builder.pipeline.executors.local import LocalExecutor
from builder.pipeline.recipe import load_recipe
from builder.pipeline.recipe_runner import run_recipe
from builder.pipeline.rows import ChunkResult, Drop
from builder.pipeline.step import Step, StepParams
from builder.stages.extract import ExtractStage
from builder.store import open_store
from tests import witness
from tests.helpers import TINY, export_rows, run_cli, write_corpus


def args_for(tmp_path, name="guard"):
    corpus = tmp_path / "corpus"
    if not corpus.exists():
        write_corpus(corpus)
    return [
        "--set", f"name={name}", "--set", f"hub.store=local:{tmp_path / 'store'}",
        "--set", "hub.namespace=tester", "--set", f"work_dir={tmp_path / 'work'}",
        "--set", f"stages.extract.source={corpus}", "--set", "stages.extract.num_proc=1",
    ]  # fmt: skip


@dataclass
class FixedParams(StepParams):
    size: int = 3
    names: list = field(default_factory=lambda: ["b", "a"])


class FixedStep(Step):
    name = "fixed"
    params_class = FixedParams
    version = 2

    def fingerprint_extra(self):
        return {"z": 1, "a": {"y": 2.5, "b": None}}


class PinnedSource:
    ref: ClassVar[dict] = {
        "kind": "dataset",
        "repo": "tester/x",
        "revision": "0123456789abcdef" * 2 + "01234567",
    }


def test_a_fingerprint_does_not_drift_between_versions():
    """Every published revision is current or stale by its fingerprint: a change in how it is
    computed (key order, length, hashing) makes every store in the world stale at once. If this
    fails, that is what the change does; make it on purpose or not at all."""
    step = FixedStep(FixedParams())
    assert step_runner._fingerprint(step, PinnedSource()) == "e676ab8668e58b2f"
    extra_reordered = {"a": {"b": None, "y": 2.5}, "z": 1}
    step.fingerprint_extra = lambda: extra_reordered  # the same settings, built in another order
    assert step_runner._fingerprint(step, PinnedSource()) == "e676ab8668e58b2f"
    other = step_runner._fingerprint(FixedStep(FixedParams(size=4)), PinnedSource())
    assert other != "e676ab8668e58b2f"


def test_chunks_cut_differently_are_never_mixed(tmp_path, monkeypatch):
    """A run cut into chunks of one file fails after two; the rerun cuts chunks of two files:
    it must not take the first run's chunk 1 (file 1) for its own chunk 1 (files 2 and 3)."""
    args = args_for(tmp_path)
    real = ExtractStage.process
    calls = []

    def fail_third(self, rows):
        calls.append(len(rows))
        if len(calls) == 3:
            raise StageError("simulated failure in the third chunk")
        return real(self, rows)

    monkeypatch.setattr(ExtractStage, "process", fail_third)
    monkeypatch.setattr(ExtractStage, "chunk_size", 1)
    assert run_cli("run", TINY, "--only", "extract", *args) == 2
    monkeypatch.undo()
    monkeypatch.setattr(ExtractStage, "chunk_size", 2)
    assert run_cli("run", TINY, "--only", "extract", *args) == 0
    rows = export_rows(f"local:{tmp_path / 'store'}", "tester/guard-extract", tmp_path / "out")
    assert sorted(r["name"] for r in rows) == ["area", "clamp", "fetch"]


def test_two_runs_of_one_stage_at_once_are_refused(tmp_path, caplog):
    """The first run holds the stage's checkpoint folder (it is paused by the witness before
    its first chunk); a second run of the same stage is refused, not run beside it."""
    args = args_for(tmp_path)
    record = tmp_path / "first.jsonl"
    with witness.paused_run(record, ["run", TINY, "--only", "extract", *args], "chunk:0",
                            "the pause", steps=["extract"]):  # fmt: skip
        assert run_cli("run", TINY, "--only", "extract", *args) == 2
    assert "another run is working in" in caplog.text
    assert not open_store(f"local:{tmp_path / 'store'}").repo_exists("tester/guard-extract")


def test_a_checkpoint_left_behind_after_publishing_is_removed_by_the_next_run(
    tmp_path, monkeypatch
):
    args = args_for(tmp_path)
    # died after publishing
    monkeypatch.setattr(step_runner.Checkpoint, "remove", lambda self: None)
    assert run_cli("run", TINY, "--only", "extract", *args) == 0
    monkeypatch.undo()
    assert list((tmp_path / "work").glob("*/*/chunks"))
    assert run_cli("run", TINY, "--only", "extract", *args) == 0  # up to date
    assert not list((tmp_path / "work").glob("*/*"))


def test_a_run_returns_the_revisions_that_are_current_afterwards(tmp_path):
    recipe = load_recipe(TINY, [a for a in args_for(tmp_path) if a != "--set"])
    first = run_recipe(recipe, ["extract", "filter"])
    store = open_store(f"local:{tmp_path / 'store'}")
    heads = {s: store.resolve(f"tester/guard-{s}") for s in ("extract", "filter")}
    assert first == heads
    assert run_recipe(recipe, ["extract", "filter"]) == heads  # up to date: the same
    # Each commit says what it was made from: the pinned input revision.
    title = store.log("tester/guard-filter")[0].title
    assert title.startswith("filter: ") and f"tester/guard-extract@{heads['extract']}" in title


def test_run_step_closes_the_executor_it_made_and_not_one_it_was_given(tmp_path, monkeypatch):
    closed = []
    monkeypatch.setattr(LocalExecutor, "close", lambda self: closed.append(self))
    recipe = load_recipe(TINY, [a for a in args_for(tmp_path) if a != "--set"])
    store = open_store(recipe.hub.store)
    step_runner.run_step(step_runner.plan_step(recipe, "extract", store), recipe)
    assert len(closed) == 1
    given = LocalExecutor()
    step_runner.run_step(step_runner.plan_step(recipe, "filter", store), recipe, given)
    assert len(closed) == 1  # the caller's to close


def test_an_input_with_no_rows_needs_no_columns_but_one_row_does(tmp_path):
    """A stage that published nothing may list no columns: the next stage runs on it (and
    publishes nothing); one row without a column the step reads is named before any work."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    store = open_store(f"local:{tmp_path / 'store'}")
    store.create_repo("tester/cols-extract", private=True)
    args = args_for(tmp_path, "cols") + ["--set", "stages.filter.input=extract"]
    data = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pylist([{"other": "x"}]), data)
    for rows, code in ((0, 0), (1, 2)):
        files = {"data/train-00000-of-00001.parquet": data} if rows else {}
        manifest = {"splits": {"train": {"rows": rows, "files": list(files)}},
                    "columns": {"train": ["other"] if rows else []}}  # fmt: skip
        (tmp_path / "manifest.json").write_text(json.dumps(manifest))
        files["manifest.json"] = tmp_path / "manifest.json"
        store.commit("tester/cols-extract", files, f"{rows} rows")
        assert run_cli("run", TINY, "--only", "filter", *args) == code
    assert store.repo_exists("tester/cols-filter")  # published from the empty input


@pytest.fixture(autouse=True)
def _no_witness_left():
    yield
    witness.uninstall()


def test_a_run_that_publishes_leaves_no_checkpoint_behind(tmp_path):
    assert run_cli("run", TINY, "--only", "extract", *args_for(tmp_path)) == 0
    assert (tmp_path / "work").exists() and not list((tmp_path / "work").glob("*/*"))


def test_branch_revisions_publish_off_main_and_list_only_their_own_fingerprint(tmp_path):
    """What a training step uses to publish checkpoints and to find one to resume from."""
    recipe = load_recipe(TINY, [a for a in args_for(tmp_path) if a != "--set"])
    store = open_store(recipe.hub.store)
    revisions = step_runner.BranchRevisions(step_runner.plan_step(recipe, "extract", store), recipe)
    assert revisions.published("step-") == {}  # no repository yet
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"\x00\x01")
    revisions.plan.step.card = lambda manifest: f"step {manifest['step']}"  # not tested here
    facts = {"step": 1}
    with pytest.raises(StageError, match="branches other than main"):
        revisions.publish(folder, "main", facts, "on main")
    first = revisions.publish(folder, "step-1", facts, "step 1")
    revisions.publish(folder, "other-1", facts, "not a step")
    found = revisions.published("step-")
    assert list(found) == ["step-1"] and found["step-1"][0] == first
    assert found["step-1"][1]["step"] == 1 and found["step-1"][1]["branch"] == "step-1"
    copies = revisions.fetch(first)
    assert copies["weights.bin"].read_bytes() == b"\x00\x01" and ".gitattributes" not in copies
    # Another fingerprint (another limit) does not resume from these branches.
    changed = [a for a in args_for(tmp_path) if a != "--set"] + ["stages.extract.limit=2"]
    recipe = load_recipe(TINY, changed)
    other = step_runner.BranchRevisions(step_runner.plan_step(recipe, "extract", store), recipe)
    assert other.published("step-") == {}


def test_stats_of_every_chunk_reach_the_manifest_and_the_stage_is_closed(tmp_path, monkeypatch):
    """Four files in four chunks: the published `stats` count all of them (not the last
    chunk's), and the stage's own resources are released when its chunks are done."""
    closed = []
    monkeypatch.setattr(ExtractStage, "chunk_size", 1)
    monkeypatch.setattr(ExtractStage, "close", lambda self: closed.append(self))
    assert run_cli("run", TINY, "--only", "extract", *args_for(tmp_path)) == 0
    store = open_store(f"local:{tmp_path / 'store'}")
    manifest = json.loads(store.read_text("tester/guard-extract", "main", "manifest.json"))
    files = len(list((tmp_path / "corpus").rglob("*.py")))
    assert files == 4 and manifest["stats"]["files"] == files
    assert closed


def test_a_chunk_counts_as_done_only_with_its_proof_and_every_rows_file_whole(tmp_path, caplog):
    """A stray file is not a chunk; a rows file lost since (a power cut) makes its chunk be done
    again, silently; a garbled proof, or a rows file that holds other rows than its proof
    counts, is named, and its chunk's files are removed."""
    checkpoint = Checkpoint(tmp_path / "work")
    for index in (0, 1, 2, 3):
        result = ChunkResult(kept=[{"n": index}, {"n": index + 10}], dropped=[Drop({"n": -1}, "r")])
        checkpoint.save(index, result, rows_in=3)
    other = Checkpoint(tmp_path / "other")
    other.save(3, ChunkResult(kept=[{"n": 1}, {"n": 2}, {"n": 3}]), rows_in=3)
    (checkpoint.chunks / "notes.json").write_text("{}")
    assert checkpoint.done_chunks() == {0, 1, 2, 3}
    assert checkpoint.is_done(0) and not checkpoint.is_done(7)
    kept_1, _, _ = checkpoint._paths(1)
    kept_1.unlink()
    assert not checkpoint.is_done(1)
    _, _, proof_2 = checkpoint._paths(2)
    proof_2.write_text("{garbled")
    other._paths(3)[0].replace(checkpoint._paths(3)[0])
    with caplog.at_level("WARNING"):
        assert checkpoint.done_chunks() == {0}
    assert "chunk 2 is damaged" in caplog.text and "chunk 1" not in caplog.text
    assert "0000003.kept.parquet holds 3 rows, its proof says 2" in caplog.text
    assert not any(path.exists() for index in (2, 3) for path in checkpoint._paths(index))


def test_a_stage_whose_rows_lack_a_column_it_declares_fails_naming_it(tmp_path):
    from builder.pipeline.rows import RowStage, write_outputs
    from builder.pipeline.step import StepParams

    class Adder(RowStage):
        name = "adder"
        adds = ("b", "c")

    checkpoint = Checkpoint(tmp_path / "work")
    checkpoint.save(0, ChunkResult(kept=[{"a": 1, "b": 2}]), rows_in=1)
    stage = Adder(StepParams())
    with pytest.raises(StageError, match=r"stage 'adder' output lacks columns \['c'\]"):
        write_outputs(stage, checkpoint, [0], tmp_path / "out")
