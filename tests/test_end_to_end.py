"""The README's quick start, as a new user runs it: `builder tiny-model DIR` (fitted with the
train step on the pipeline's formats), then `builder run hub_configs/tiny.yaml`. Every step
publishes rows (about two dozen through `select`), the model repository gets checkpoint branches,
the evaluation results exist, and a second run publishes nothing."""

from __future__ import annotations

import json
import shutil

import pytest

from builder.store import open_store
from tests.helpers import TINY, run_cli

STAGES = ("extract", "filter", "imports", "typecheck", "decontaminate", "dedup", "judge",
          "concepts", "instructions", "responses", "execute", "select")  # fmt: skip


@pytest.mark.slow
def test_the_quick_start_has_rows_in_every_stage_a_model_and_scores(tmp_path, monkeypatch):
    shutil.which("bwrap") or pytest.skip("bubblewrap is not installed")
    monkeypatch.chdir(tmp_path)  # the recipe's paths are relative: .builder/ here
    assert run_cli("tiny-model", ".builder/tiny-model") == 0
    assert run_cli("run", TINY) == 0
    datasets, models = open_store("local:.builder/store"), open_store("local:.builder/store", "model")
    manifests = {
        s: json.loads(datasets.read_text(f"local/tiny-{s}", "main", "manifest.json"))
        for s in (*STAGES, "eval")
    }
    for stage in STAGES:
        assert manifests[stage]["rows_out"] > 0, (stage, manifests[stage]["drops"])
    select = manifests["select"]
    assert select["rows_out"] >= 10  # distinct instructions, each with a passing response
    assert manifests["execute"]["stats"].get("status:pass", 0) >= select["rows_out"]
    branches = models.refs("local/tiny-train").branches
    assert {"main", "step-000002", "step-000004"} <= set(branches)
    train = json.loads(models.read_text("local/tiny-train", "main", "manifest.json"))
    assert train["input"]["repo"] == "local/tiny-select"  # trained on the pipeline's own pairs
    assert train["input"]["revision"] == datasets.resolve("local/tiny-select")
    evaluation = manifests["eval"]
    history = models.log("local/tiny-train")  # newest first: the scores, then the weights
    assert history[0].title == "eval: update model-index"
    assert evaluation["input"] == {"kind": "model", "repo": "local/tiny-train",
                                   "revision": history[1].id}  # the weights' commit  # fmt: skip
    assert set(evaluation["benchmarks"]) == {"humaneval+", "mbpp+"}
    assert "model-index" in models.read_text("local/tiny-train", "main", "README.md")
    heads = {s: datasets.resolve(f"local/tiny-{s}") for s in (*STAGES, "eval")}
    assert run_cli("run", TINY) == 0  # unchanged: nothing published again
    assert heads == {s: datasets.resolve(f"local/tiny-{s}") for s in heads}
