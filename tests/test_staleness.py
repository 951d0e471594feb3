"""A published revision is stale when anything that decides its output changed, including what
only a step's extra settings cover (not its parameters): the benchmark files decontamination
reads, the model a generation stage prompts, the sandbox that judges. `status` says so and
`run` publishes again; an unchanged setting publishes nothing."""

from __future__ import annotations

import gzip
import json
import shutil

import pytest

from builder.data import BENCHMARKS_DIR
from builder.store import open_store
from tests.helpers import TINY, run_cli, write_corpus


@pytest.fixture
def recipe_args(tmp_path):
    return [
        "--set", "name=stale", "--set", f"hub.store=local:{tmp_path / 'store'}",
        "--set", "hub.namespace=tester", "--set", f"work_dir={tmp_path / 'work'}",
        "--set", f"stages.extract.source={write_corpus(tmp_path / 'corpus')}",
        "--set", "stages.extract.num_proc=1",
    ]  # fmt: skip


def _current(args, stage, capsys) -> bool:
    capsys.readouterr()
    assert run_cli("status", TINY, *args, "--json") == 0
    return {e["stage"]: e for e in json.loads(capsys.readouterr().out)}[stage]["current"]


def test_a_benchmark_file_edited_in_place_makes_decontaminate_stale(tmp_path, recipe_args, capsys):
    mine = tmp_path / "humaneval.jsonl.gz"
    shutil.copy(BENCHMARKS_DIR / "HumanEvalPlus-v0.1.9.jsonl.gz", mine)
    args = recipe_args + [
        "--set", "stages.decontaminate.input=extract",
        "--set", "stages.decontaminate.benchmarks=[humaneval+]",
        "--set", f"stages.decontaminate.sources={{humaneval+: {mine}}}",
    ]  # fmt: skip
    assert run_cli("run", TINY, "--only", "extract,decontaminate", *args) == 0
    store = open_store(f"local:{tmp_path / 'store'}")
    first = store.resolve("tester/stale-decontaminate")
    assert _current(args, "decontaminate", capsys)
    lines = gzip.decompress(mine.read_bytes()).decode().splitlines(keepends=True)
    mine.write_bytes(gzip.compress("".join(lines[:-1]).encode()))  # the same name, one task less
    assert not _current(args, "decontaminate", capsys)
    assert run_cli("run", TINY, "--only", "decontaminate", *args) == 0
    assert store.resolve("tester/stale-decontaminate") != first


def test_another_sandbox_makes_execute_stale(tmp_path, recipe_args, capsys):
    args = recipe_args + ["--set", "stages.execute.input=extract",
                          "--set", "stages.execute.code_column=function"]  # fmt: skip
    shutil.which("bwrap") or pytest.skip("bubblewrap is not installed")
    assert run_cli("run", TINY, "--only", "extract,execute", *args) == 0
    assert _current(args, "execute", capsys)
    assert not _current(args + ["--set", "sandbox.backend=docker"], "execute", capsys)


def test_other_weights_make_a_generation_stage_stale(tmp_path, recipe_args, tiny_model, capsys):
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    # a random model: its judge keeps nothing, and the run goes on (stop_when_empty: false)
    args = recipe_args + ["--set", f"model={model}", "--set", "stages.judge.input=extract",
                          "--set", "stages.judge.num_fewshots=1",
                          "--set", "stop_when_empty=false"]  # fmt: skip
    assert run_cli("run", TINY, "--only", "extract,judge", *args) == 0
    store = open_store(f"local:{tmp_path / 'store'}")
    first = store.resolve("tester/stale-judge")
    assert _current(args, "judge", capsys)
    config = json.loads((model / "config.json").read_text())
    config["initializer_range"] = config.get("initializer_range", 0.02) * 2  # new bytes
    (model / "config.json").write_text(json.dumps(config))
    assert not _current(args, "judge", capsys)
    assert run_cli("run", TINY, "--only", "judge", *args) == 0
    assert store.resolve("tester/stale-judge") != first
