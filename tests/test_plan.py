"""`builder plan`: what a run will do, from the figures an earlier run measured; then the run
itself, compared with the plan; then "up to date" everywhere."""

from __future__ import annotations

import json

import pytest

from builder.pipeline.plan import parse_rates, plan_recipe
from builder.pipeline.recipe import load_recipe
from tests import witness
from tests.helpers import ROOT, TINY, head_manifest, run_cli
from tests.test_generation_witness import CHAIN, NO_TO_FETCH, needs_bwrap, settings

STEPS = ("extract", *CHAIN)


def overrides(args: list[str]) -> list[str]:
    return [a for a in args if a != "--set"]


def manifest(tmp_path, step):
    return head_manifest(f"local:{tmp_path / 'store'}", f"tester/pl-{step}")


@needs_bwrap
def test_plan_predicts_the_next_run_within_a_quarter_and_says_up_to_date_after_it(
    tmp_path, capsys, caplog
):
    args = [*settings(tmp_path, "pl"), "--set", "stages.extract.source=python:stdlib",
            "--set", "stages.extract.limit=150", "--set", "stages.judge.limit=6"]  # fmt: skip
    with witness.installed(tmp_path / "first.jsonl", answers=NO_TO_FETCH):
        assert run_cli("run", TINY, "--only", ",".join(STEPS), *args) == 0
        first = {s: manifest(tmp_path, s) for s in STEPS}
        more = [*args, "--set", "stages.responses.n=3"]  # half as many samples again
        recipe = load_recipe(TINY, overrides(more))
        planned = {e.step: e for e in plan_recipe(recipe) if e.step in STEPS}
        assert [s for s in STEPS if planned[s].current] == ["extract", "judge", "concepts",
                                                            "instructions"]  # fmt: skip
        assert planned["responses"].why.startswith("n: 2 -> 3")
        assert planned["execute"].why == "its input will change (responses runs first)"
        responses = planned["responses"]
        assert responses.prompts == first["responses"]["rows_in"]
        assert responses.samples == 3 * first["responses"]["rows_in"]
        assert responses.tokens_max == responses.samples * recipe.stages["responses"].max_tokens
        assert responses.rate_from.startswith("measured (tester/pl-responses@")
        other = load_recipe(TINY, [*overrides(more), "sandbox.backend=local"])
        execute = next(e for e in plan_recipe(other) if e.step == "execute")
        assert execute.rate_from.startswith("unknown: measured with sandbox witness, this run")
        assert execute.seconds is None  # another backend's rate is not this one's
        caplog.set_level("INFO", logger="builder")
        assert run_cli("run", TINY, "--only", ",".join(STEPS), *more) == 0
        second = {s: manifest(tmp_path, s) for s in STEPS}
        # the run logged the same plan at its start, then how far off each step was
        will = f"plan: responses will run (n: 2 -> 3): rows out {round(responses.rows_out):,}"
        assert will in caplog.text
        assert f"plan: responses did rows out {second['responses']['rows_out']:,} (estimated" in caplog.text
        assert "plan: the run took" in caplog.text
        for step in ("responses", "execute", "mutate", "select"):
            actual, predicted = second[step]["rows_out"], planned[step].rows_out
            assert abs(predicted - actual) <= 0.25 * actual, (step, predicted, actual)
        tokens = second["responses"]["stats"]["output_tokens"]
        assert abs(planned["responses"].tokens - tokens) <= 0.25 * tokens
        # one program per sample with code, cached or not (mutants are not compared: the
        # witness passes only each task's sample 0, so they do not grow with n here)
        assert planned["execute"].programs == second["execute"]["rows_in"]
        # every manifest now carries what it measured, for the next plan
        assert second["responses"]["measured"]["work"] == "tokens"
        assert second["execute"]["measured"]["sandbox"] == "witness"
        # and the same plan again: nothing to do
        assert run_cli("plan", TINY, *more) == 0
        assert all(e.current for e in plan_recipe(recipe) if e.step in STEPS)
    shown = capsys.readouterr().out
    assert "responses      up to date" in shown and "total: 0 s" in shown


def test_the_capacity_table_is_the_plans_arithmetic(tmp_path, capsys):
    """The README's table: 238k instructions x 10 samples x at most 1,536 tokens, at 4,000
    tokens/s per GPU, on 8 GPUs; nothing measured, nothing published."""
    published = ROOT / "hub_configs" / "starcoder2-15b.yaml"
    args = ["--set", f"hub.store=local:{tmp_path / 'empty'}", "--rows", "instructions=238000",
            "--rate", "responses=4000tok/s", "--gpus", "8", "--json"]  # fmt: skip
    assert run_cli("plan", str(published), *args) == 0
    plan = {e["step"]: e for e in json.loads(capsys.readouterr().out)}
    responses = plan["responses"]
    assert (responses["prompts"], responses["samples"]) == (238_000, 2_380_000)
    assert responses["tokens_max"] == 2_380_000 * 1536 and responses["tokens"] is None
    assert responses["seconds"] == pytest.approx(2_380_000 * 1536 / (4000 * 8))  # 31.7 h
    assert responses["rate_from"] == "--rate 4000 tokens/s x 8"
    assert plan["judge"]["seconds"] is None and plan["judge"]["rate_from"] == "unknown"
    assert plan["select"]["rows_out"] is None  # never a made-up number
    assert parse_rates(["execute=300prog/s"]) == {"execute": ("programs", 300.0)}
    assert run_cli("plan", str(published), "--rate", "execute=fast") == 2
    assert run_cli("plan", str(published), "--rows", "nosuch=3", *args[:2]) == 2
