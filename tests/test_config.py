import pytest

from builder.errors import RecipeError
from builder.pipeline.recipe import load_recipe
from builder.stages.extract import ExtractParams
from tests.helpers import ROOT, TINY


def write(tmp_path, text):
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


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
        "select",
        "train",
    ]
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
