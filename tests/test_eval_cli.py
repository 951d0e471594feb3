"""`builder eval` end to end: a tiny model generates for 5 tasks of each benchmark, the samples
are graded in the sandbox and the results dataset is published (local store and fake Hub)."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from builder.evaluation.evalplus_data import load_evalplus
from builder.store import open_store
from tests import witness
from tests.helpers import run_cli
from tests.test_eval_grading import cache_dir, need_bwrap  # noqa: F401


def test_eval_model_generates_grades_and_publishes(tiny_model, store_uri, cache_dir, capsys):  # noqa: F811
    need_bwrap()
    repo = f"tester/tiny-eval-{store_uri.split(':')[0]}"
    assert run_cli("eval", "--model", tiny_model, "--limit", "5", "--max-tokens", "24",
                   "--store", store_uri, "--repo", repo, "--cache-dir", cache_dir) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert printed.count("pass@1:") == 4 and "mbpp+ (base + extra tests)" in printed
    store = open_store(store_uri)
    head = store.resolve(repo)
    files = store.list_files(repo, head)
    assert {"README.md", "manifest.json", "data/humaneval_plus-00000-of-00001.parquet",
            "data/mbpp_plus-00000-of-00001.parquet"} <= set(files)  # fmt: skip
    manifest = json.loads(store.read_text(repo, head, "manifest.json"))
    assert manifest["benchmarks"]["humaneval+"]["version"] == "v0.1.9"
    assert manifest["benchmarks"]["mbpp+"]["tasks"] == 5 and manifest["generation"]["limit"] == 5
    assert manifest["benchmarks"]["humaneval+"]["grading"]["evalplus"] == "0.3.1"
    local = store.fetch(repo, head, ["data/humaneval_plus-00000-of-00001.parquet"])
    rows = pq.read_table(local["data/humaneval_plus-00000-of-00001.parquet"]).to_pylist()
    assert [r["task_id"] for r in rows] == [f"HumanEval/{i}" for i in range(5)]
    problems = load_evalplus("humaneval+").problems
    for row in rows:  # a random tiny model: whatever it wrote, graded as prompt + completion
        problem = problems[row["task_id"]]
        assert row["prompt"].endswith("### Response\n\n```python\n" + problem["prompt"].strip())
        assert (
            row["solution"] == problem["prompt"] + row["completion"]
            and "```" not in row["completion"]
        )
        assert row["base_status"] in ("pass", "fail", "timeout") and isinstance(
            row["pass_plus"], bool
        )
    card = store.read_text(repo, head, "README.md")
    assert "config_name: humaneval_plus" in card and "model-index:" in card
    # A second run with a grading option changed needs the same generations: it publishes a
    # new revision and asks no engine for anything. Its engine is the witness (the completion
    # cache does not key on the backend), which would write down any request, and whose
    # answers differ from the tiny model's: the completions published are the cached ones.
    with witness.installed(cache_dir / f"witness-{repo.rsplit('-', 1)[-1]}.jsonl") as record:
        assert run_cli("eval", "--model", tiny_model, "--limit", "5", "--max-tokens", "24",
                       "--benchmarks", "humaneval+", "--store", store_uri, "--repo", repo,
                       "--cache-dir", cache_dir, "--engine", "witness",
                       "--min-time-limit", "2") == 0  # fmt: skip
    assert witness.read(record) == []  # the engine was not even opened
    second = store.resolve(repo)
    assert second != head
    local = store.fetch(repo, second, ["data/humaneval_plus-00000-of-00001.parquet"])
    again = pq.read_table(local["data/humaneval_plus-00000-of-00001.parquet"]).to_pylist()
    assert [r["completion"] for r in again] == [r["completion"] for r in rows]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--samples", "s.jsonl"], "--samples needs --benchmark"),
        (["--samples", "s.jsonl", "--benchmark", "apps"], "unknown benchmark 'apps'"),
        (
            ["--samples", "s.jsonl", "--benchmark", "livecodebench"],
            "livecodebench needs --data-file",
        ),
        (["--samples", "missing.jsonl", "--benchmark", "mbpp"], "cannot read benchmark data"),
    ],
)
def test_eval_bad_input_is_a_one_line_error(args, message, tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.jsonl").write_text('{"task_id": "Mbpp/2", "solution": "x = 1"}\n')
    assert run_cli("eval", *args) == 2
    assert message in caplog.text


def test_an_eval_step_in_a_recipe_publishes_through_the_runner(tiny_model, tmp_path, cache_dir, capsys):  # noqa: F811
    """The same evaluation as a recipe step: published once, reported by `status`, read by
    `store show/export`, and up to date on a second run."""
    need_bwrap()
    store = f"local:{tmp_path / 'store'}"
    recipe = tmp_path / "eval.yaml"
    recipe.write_text(
        f"name: evals\nmodel: {tiny_model}\nhub:\n  store: {store}\n  namespace: tester\n"
        f"work_dir: {tmp_path / 'work'}\nstages:\n  eval:\n    benchmarks: [humaneval+]\n"
        f"    limit: 2\n    max_tokens: 16\n    cache_dir: {cache_dir}\n"
    )
    assert run_cli("run", recipe) == 0
    datasets = open_store(store)
    head = datasets.resolve("tester/evals-eval")
    manifest = json.loads(datasets.read_text("tester/evals-eval", head, "manifest.json"))
    assert manifest["kind"] == "evaluation" and manifest["stage"] == "eval"
    assert manifest["input"]["kind"] == "model" and manifest["input"]["revision"].startswith("local-")
    assert manifest["benchmarks"]["humaneval+"]["tasks"] == 2
    assert manifest["splits"]["humaneval_plus"]["rows"] == 2
    capsys.readouterr()
    assert run_cli("status", recipe, "--json") == 0
    (entry,) = json.loads(capsys.readouterr().out)
    assert (entry["kind"], entry["revision"], entry["current"]) == ("evaluation", head, True)
    assert run_cli("store", "show", "tester/evals-eval", "--store", store) == 0
    assert "## First 5 rows of 'humaneval_plus'" in capsys.readouterr().out
    out = tmp_path / "samples.jsonl"
    assert run_cli("store", "export", "tester/evals-eval", out, "--store", store) == 0
    assert [json.loads(line)["task_id"] for line in out.read_text().splitlines()] == [
        "HumanEval/0", "HumanEval/1"]  # fmt: skip
    assert run_cli("run", recipe) == 0
    assert datasets.resolve("tester/evals-eval") == head  # unchanged: nothing republished
    # Grading changed, generations not: a new revision, and no request to the (witness) engine.
    with witness.installed(tmp_path / "witness.jsonl") as record:
        assert run_cli("run", recipe, "--set", "stages.eval.engine=witness",
                       "--set", "stages.eval.min_time_limit=2") == 0  # fmt: skip
    assert witness.read(record) == [] and datasets.resolve("tester/evals-eval") != head


@pytest.mark.parametrize("damage", ["config_not_json", "truncated_weights", "no_tokenizer"])
@pytest.mark.parametrize("engine", ["transformers", "vllm"])
def test_eval_of_a_broken_model_folder_is_one_line_naming_it(
    damage, engine, tiny_model, tmp_path, caplog
):
    import logging
    import shutil

    if engine == "vllm":
        pytest.importorskip("vllm")
    model = shutil.copytree(tiny_model, tmp_path / "broken")
    if damage == "config_not_json":
        (model / "config.json").write_text("{not json")
    elif damage == "truncated_weights":
        weights = next(model.glob("*.safetensors"))
        weights.write_bytes(weights.read_bytes()[:-64])
    else:
        for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"):
            (model / name).unlink(missing_ok=True)
    with caplog.at_level(logging.ERROR):
        code = run_cli("eval", "--model", model, "--engine", engine, "--benchmarks", "humaneval+",
                       "--limit", "1", "--no-publish", "--cache-dir", tmp_path / "cache")  # fmt: skip
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert code == 2 and len(errors) == 1 and errors[0].startswith(f"model folder {model}"), errors
    assert "\n" not in errors[0]


def test_eval_flags_are_the_eval_steps_settings_with_their_defaults():
    """`builder eval`'s flags come from `EvalParams`: every field is a flag or named as not one,
    and with no flag given the command builds exactly the step's defaults."""
    import argparse
    import dataclasses

    from builder.cli import eval as eval_cli
    from builder.stages.eval_params import EvalParams

    flagged = {name for helps in eval_cli.FLAGS.values() for name in helps}
    fields = {f.name for f in dataclasses.fields(EvalParams)}
    assert flagged | eval_cli.NOT_FLAGS == fields and not flagged & eval_cli.NOT_FLAGS

    parser = argparse.ArgumentParser()
    eval_cli.register(parser.add_subparsers())
    args = parser.parse_args(["eval", "--model", "m"])
    defaults = EvalParams()
    assert {name: getattr(args, name) for name in flagged} == {
        name: getattr(defaults, name) for name in flagged
    }
    args = parser.parse_args(
        ["eval", "--model", "m", "--benchmarks", "mbpp, ds1000", "--top-p", "0.5",
         "--workers", "3", "--checkpoints", "--fix-find-zero"]
    )  # fmt: skip
    assert (args.benchmarks, args.top_p, args.workers) == (["mbpp", "ds1000"], 0.5, 3)
    assert args.checkpoints is True and args.fix_find_zero is True and args.base_only is False
