import re
import sys

import pytest

from builder.engines import vllm_engine
from builder.engines.config import EngineConfig
from builder.errors import BuilderError, RecipeError, StageError
from builder.pipeline.executors.config import WorkerResourcesConfig
from builder.pipeline.executors.local import LocalExecutor
from builder.pipeline.recipe import load_recipe
from builder.pipeline.step import StepContext
from builder.registry import EXECUTORS, STEPS
from builder.stages.eval_params import EvalParams
from builder.stages.extract import ExtractParams
from tests.helpers import ROOT, TINY


def write(tmp_path, text):
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


def test_the_published_recipes_switches_to_every_published_seed_rule_load_and_cover_them():
    """The `--set` lines the published recipe's comment gives name real settings, and together
    they restore every rule `published_rules` knows a difference for."""
    from builder.stages import published_rules

    path = ROOT / "hub_configs" / "starcoder2-15b.yaml"
    overrides = re.findall(r"--set (stages\.(?:extract|filter|typecheck)\.\S+)", path.read_text())
    recipe = load_recipe(path, overrides)
    assert len(overrides) == len(published_rules.RULES)
    for step in ("extract", "filter", "typecheck"):
        assert published_rules.differences(step, recipe.stages[step]) == []
    assert published_rules.differences("filter", load_recipe(path).stages["filter"])


def test_shipped_recipes_load_with_published_settings():
    tiny = load_recipe(TINY)
    assert tiny.hub.store.startswith("local:")
    assert isinstance(tiny.stages["extract"], ExtractParams)
    published = load_recipe(ROOT / "hub_configs" / "starcoder2-15b.yaml")
    assert published.model == "bigcode/starcoder2-15b"
    assert published.hub.store == "hf"
    assert published.stage_names() == [
        "extract",
        "filter",
        "imports",
        "typecheck",
        "decontaminate",
        "dedup",
        "judge",
        "concepts",
        "instructions",
        "responses",
        "execute",
        "mutate",
        "select",
        "rl_tasks",
        "train",
    ]
    # the SFT pairs are the published ones (select reads mutate, which adds columns only, and
    # keeps its published policy); the RL export and train read what they name
    assert published.stages["select"].policy == "random_one"
    assert published.input_stage("rl_tasks") == "mutate" and published.input_stage("train") == "select"
    dedup = published.stages["dedup"]  # as text-dedup, the published run's tool, clusters
    assert (dedup.mode, dedup.threshold, dedup.num_perm, dedup.seed) == ("reference", 0.5, 250, 42)
    train = published.stages["train"]
    assert train.input == "select" and not train.use_peft
    assert {k: train.sft[k] for k in ("optim", "learning_rate", "num_train_epochs",
            "per_device_train_batch_size", "gradient_accumulation_steps", "warmup_steps",
            "lr_scheduler_type", "max_length", "bf16")} == {
        "optim": "adafactor", "learning_rate": 1e-5, "num_train_epochs": 4,
        "per_device_train_batch_size": 1, "gradient_accumulation_steps": 64,
        "warmup_steps": 0.05, "lr_scheduler_type": "linear", "max_length": 1280, "bf16": True,
    }  # fmt: skip
    dropouts = ("attention_dropout", "residual_dropout", "embedding_dropout")
    assert all(train.sft["model_init_kwargs"][k] == 0.0 for k in dropouts)
    responses = published.stages["responses"]
    assert (responses.n, responses.temperature, responses.max_tokens) == (10, 0.7, 1536)
    assert published.stages["extract"].source == "bigcode/the-stack-dedup"
    assert published.stages["filter"].max_lines == 150


def test_unknown_key_names_dotted_path_and_file(tmp_path):
    path = write(tmp_path, "name: x\nstages:\n  extract:\n    sorce: /tmp\n")
    with pytest.raises(RecipeError, match=r"recipe.yaml: unknown key 'stages.extract.sorce'"):
        load_recipe(path)
    path = write(tmp_path, "name: x\nhub:\n  stor: hf\n")
    with pytest.raises(RecipeError, match=r"unknown key 'hub.stor'"):
        load_recipe(path)


def test_unknown_stage_and_bad_types(tmp_path):
    with pytest.raises(RecipeError, match=r"unknown stage 'stages.frobnicate'"):
        load_recipe(write(tmp_path, "name: x\nstages:\n  frobnicate: {}\n"))
    with pytest.raises(RecipeError, match=r"'stages.extract.limit' must be int or null"):
        load_recipe(write(tmp_path, "name: x\nstages:\n  extract:\n    limit: lots\n"))
    with pytest.raises(RecipeError, match=r"'hub.private' must be bool"):
        load_recipe(write(tmp_path, "name: x\nhub:\n  private: maybe\n"))
    with pytest.raises(RecipeError, match=r"missing key 'name'"):
        load_recipe(write(tmp_path, "model: m\n"))


def test_missing_and_malformed_recipe(tmp_path):
    with pytest.raises(RecipeError, match="recipe not found: .*nope.yaml"):
        load_recipe(tmp_path / "nope.yaml")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(write(tmp_path, "name: [unclosed\n"))


def test_set_overrides_parse_yaml_scalars():
    recipe = load_recipe(
        TINY,
        ["stages.extract.limit=25", "hub.private=false", "hub.store=local:/tmp/x", "model=123"],
    )
    assert recipe.stages["extract"].limit == 25
    assert recipe.hub.private is False
    assert recipe.hub.store == "local:/tmp/x"
    assert recipe.model == "123"


def test_set_unknown_key_is_an_error():
    with pytest.raises(RecipeError, match=r"--set stages.extract.limt: unknown key"):
        load_recipe(TINY, ["stages.extract.limt=3"])
    with pytest.raises(
        RecipeError, match=r"--set nope=1: unknown key 'nope'|--set nope: unknown key 'nope'"
    ):
        load_recipe(TINY, ["nope=1"])
    with pytest.raises(RecipeError, match="expects dotted.key=value"):
        load_recipe(TINY, ["stages.extract.limit"])


def test_input_defaults_to_previous_stage_and_is_checked(tmp_path):
    recipe = load_recipe(write(tmp_path, "name: x\nstages:\n  extract: {}\n  filter: {}\n"))
    assert recipe.input_stage("extract") is None
    assert recipe.input_stage("filter") == "extract"
    pinned = load_recipe(
        write(tmp_path, "name: x\nstages:\n  extract: {}\n  filter:\n    input: extract@v1\n")
    )
    assert pinned.input_stage("filter") == "extract@v1"
    with pytest.raises(RecipeError, match="stages.filter.input names unknown stage 'dedup'"):
        load_recipe(
            write(tmp_path, "name: x\nstages:\n  extract: {}\n  filter:\n    input: dedup\n")
        )


def test_fingerprint_follows_content():
    assert load_recipe(TINY).fingerprint() == load_recipe(TINY).fingerprint()
    assert (
        load_recipe(TINY).fingerprint()
        != load_recipe(TINY, ["stages.extract.limit=1"]).fingerprint()
    )


def test_set_on_a_stage_the_recipe_lacks_is_refused(tmp_path):
    path = write(tmp_path, "name: x\nstages:\n  extract: {}\n")
    with pytest.raises(RecipeError, match="has no stage 'filter'"):
        load_recipe(path, ["stages.filter.max_lines=3"])


def test_executor_settings_and_per_step_resources(monkeypatch):
    recipe = load_recipe(
        TINY,
        [
            "executor.backend=ray",
            "executor.address=10.0.0.1:6379",
            "executor.max_retries=5",
            "executor.resources.responses.gpus=2",
            "executor.resources.execute.cpus=8",
            "executor.resources.extract.workers=3",
            "executor.runtime_env.env_vars.HF_HOME=/shared/hf",
            "stages.responses.chunk_size=4096",
        ],
    )
    executor = recipe.executor
    assert (executor.backend, executor.address, executor.max_retries) == ("ray", "10.0.0.1:6379", 5)
    assert executor.runtime_env == {"env_vars": {"HF_HOME": "/shared/hf"}}
    assert isinstance(executor.resources["responses"], WorkerResourcesConfig)
    assert executor.resources["responses"].gpus == 2.0 and executor.resources["execute"].cpus == 8

    local = LocalExecutor(executor)
    context = StepContext(engine=EngineConfig(backend="vllm", tensor_parallel_size=4))
    responses = STEPS.load("responses")(recipe.stages["responses"], context)
    monkeypatch.setattr(vllm_engine, "runs_on_gpus", lambda: True)
    assert responses.resources().gpus == 4  # vLLM: one tensor-parallel group per worker
    monkeypatch.setattr(vllm_engine, "runs_on_gpus", lambda: False)
    assert responses.resources().gpus == 0  # vLLM's CPU build
    assert local.resources_for(responses).gpus == 2  # the recipe's override
    extract = STEPS.load("extract")(recipe.stages["extract"], StepContext())
    assert (local.resources_for(extract).workers, local.resources_for(extract).max_workers) == (
        3,
        3,
    )
    openai = StepContext(engine=EngineConfig(backend="openai"))
    assert STEPS.load("responses")(recipe.stages["responses"], openai).resources().max_workers == 1
    # Where and how work runs changes neither a step's nor the recipe's fingerprint.
    assert responses.chunk_size == 4096
    assert "chunk_size" not in recipe.stages["responses"].fingerprint_items()
    assert (
        recipe.fingerprint()
        == load_recipe(TINY, ["stages.responses.chunk_size=4096"]).fingerprint()
    )


@pytest.mark.parametrize(
    "override, message",
    [
        ("executor.resources.trian.gpus=1", "executor.resources names unknown stage 'trian'"),
        (
            "executor.resources.responses.colour=1",
            "unknown key 'executor.resources.responses.colour'",
        ),
        (
            "executor.resources.responses.workers=0",
            "'executor.resources.responses.workers' must be >= 1, got 0",
        ),
        (
            "executor.resources.responses.gpus=many",
            "'executor.resources.responses.gpus' must be float",
        ),
        ("executor.max_retries=-1", "'executor.max_retries' must be >= 0, got -1"),
        ("executor.start_timeout_s=0", "'executor.start_timeout_s' must be > 0"),
        ("stages.filter.chunk_size=0", "'stages.filter.chunk_size' must be >= 1, got 0"),
        ("executor.adress=x", "unknown key 'executor.adress'"),
    ],
)
def test_bad_executor_settings_name_themselves(override, message):
    with pytest.raises(RecipeError, match=re.escape(message)):
        load_recipe(TINY, [override])


def test_chunk_size_of_a_step_without_chunks_is_refused():
    with pytest.raises(StageError, match="stages.eval.chunk_size: 'eval' has no chunks"):
        STEPS.load("eval")(EvalParams(chunk_size=10), StepContext())


def test_the_ray_executor_without_ray_is_a_one_line_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    monkeypatch.delitem(sys.modules, "builder.pipeline.executors.ray_executor", raising=False)
    monkeypatch.delitem(sys.modules, "builder.pipeline.executors._ray_actors", raising=False)
    with pytest.raises(BuilderError, match=r"needs ray, which is not installed.*\[ray\]"):
        EXECUTORS.create("ray", load_recipe(TINY, ["executor.backend=ray"]).executor)
