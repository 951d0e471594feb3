"""The `train` step on CPU with a tiny Starcoder2 built on the spot: what training changes, what
the loss covers, checkpoint revisions published while training runs (local store and fake Hub),
resuming after kill -9 (from the work directory and from the store), and bad input."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading

import jinja2
import pytest
import yaml

from builder.pipeline.input_opener import materialize
from builder.pipeline.step_runner import BranchRevisions
from builder.stages.train.data import conversations
from builder.store import open_store
from tests.helpers import run_cli
from tests.train_helpers import (
    ROOT,
    SFT,
    build_tiny_starcoder2,
    manifest,
    pairs,
    write_jsonl,
    write_recipe,
)

pytest.importorskip("trl")


@pytest.fixture(scope="module")
def tiny_sc2(tmp_path_factory):
    return build_tiny_starcoder2(tmp_path_factory.mktemp("tiny-sc2"))


def _trainer(model, tmp_path, dialogues, use_peft=False, **sft):
    from builder.stages.train.params import TrainParams
    from builder.stages.train.trainer import (
        build_trainer,
        load_tokenizer,
        lora_config,
        make_sft_config,
    )

    params = TrainParams(sft={**SFT, **sft}, use_peft=use_peft, lora={"r": 4} if use_peft else {})
    args = make_sft_config(params, tmp_path / "out", save_strategy="no")
    tokenizer = load_tokenizer(str(model), None)
    return build_trainer(str(model), args, dialogues, tokenizer, lora_config(params)), tokenizer


def _dialogues(rows):
    found, dropped = conversations(iter(rows), "pairs", None)
    assert not dropped
    return found


def _trainable(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def test_full_finetuning_changes_every_trainable_parameter(tiny_sc2, tmp_path):
    trainer, _ = _trainer(tiny_sc2, tmp_path, _dialogues(pairs(6)), max_steps=3)
    before = _trainable(trainer.model)
    assert len(before) == len(list(trainer.model.parameters()))  # full: everything trains
    trainer.train()
    unchanged = [n for n, p in trainer.model.named_parameters() if p.equal(before[n])]
    assert unchanged == []


def test_lora_keeps_the_base_weights_and_trains_the_adapter(tiny_sc2, tmp_path):
    trainer, _ = _trainer(tiny_sc2, tmp_path, _dialogues(pairs(6)), use_peft=True, max_steps=3)
    every = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    adapter = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert adapter and all("lora_" in n for n in adapter)
    trainer.train()
    after = dict(trainer.model.named_parameters())
    assert [n for n in every if n not in adapter and not after[n].equal(every[n])] == []
    assert [n for n in adapter if after[n].equal(every[n])] == []


@pytest.mark.parametrize("kind", ["pairs", "messages"])
def test_the_loss_covers_the_responses_and_their_end_of_text_token_only(kind, tiny_sc2, tmp_path):
    if kind == "pairs":
        rows = pairs(2)
    else:  # a system turn, then two exchanges: both responses are trained on
        rows = [{"messages": [
            {"role": "system", "content": "Answer in Python."},
            {"role": "user", "content": "Add two numbers."},
            {"role": "assistant", "content": "def add(a, b):\n    return a + b"},
            {"role": "user", "content": "Now three."},
            {"role": "assistant", "content": "def add3(a, b, c):\n    return a + b + c\n"},
        ]}]  # fmt: skip
    dialogues, dropped = conversations(iter(rows), kind, None)
    assert len(dialogues) == len(rows) and not dropped
    trainer, tokenizer = _trainer(tiny_sc2, tmp_path, dialogues)
    eos = tokenizer.eos_token_id
    for example, dialogue in zip(trainer.train_dataset, dialogues):
        responses = [m["content"] for m in dialogue if m["role"] == "assistant"]
        expected = [
            t for r in responses for t in tokenizer(r, add_special_tokens=False).input_ids + [eos]
        ]
        trained = [t for t, label in zip(example["input_ids"], example["labels"]) if label != -100]
        assert trained == expected
        text = tokenizer.decode(example["input_ids"])
        assert "### Instruction\n" in text and text.count("### Response\n") == len(responses)


def test_options_yaml_reads_as_text_become_numbers(tmp_path):
    from builder.stages.train.params import TrainParams
    from builder.stages.train.trainer import lora_config, make_sft_config

    sft = {**SFT, "learning_rate": "1e-5", "max_steps": "4", "warmup_steps": "0.05"}
    args = make_sft_config(TrainParams(sft=sft), tmp_path)
    assert (args.learning_rate, args.max_steps, args.warmup_steps) == (1e-5, 4, 0.05)
    assert (
        lora_config(TrainParams(use_peft=True, lora={"lora_dropout": "5e-2"})).lora_dropout == 0.05
    )


def test_checkpoints_left_staged_by_a_killed_run_are_published_once(tmp_path):
    from builder.stages.train.checkpoints import CheckpointPublisher

    class Branches:  # what the runner's BranchRevisions does, in memory
        def __init__(self):
            self.files: dict[str, list[str]] = {}

        def publish(self, folder, branch, facts, title):
            assert facts == {"at": int(branch[-6:])}
            self.files[branch] = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))
            return "0" * 40

        def published(self, prefix):
            return {b: ("0" * 40, {}) for b in self.files if b.startswith(prefix)}

    def describe(step, history, folder):
        (folder / "loss.svg").write_text("<svg/>")
        return {"at": step}

    branches, staged = Branches(), tmp_path / "staged"
    killed = CheckpointPublisher(tmp_path, branches, describe)
    for step in (2, 4):  # saved and staged; killed before either upload finished
        checkpoint = tmp_path / "trainer" / f"checkpoint-{step}"
        checkpoint.mkdir(parents=True)
        for name in ("model.safetensors", "config.json", "optimizer.pt", "trainer_state.json"):
            (checkpoint / name).write_text(name)
        killed._stage(checkpoint, step, [], "{}")
    branches.files["step-000002"] = ["(committed just before the kill)"]
    rerun = CheckpointPublisher(tmp_path, branches, describe)
    rerun.publish_left_over()
    rerun.wait()
    rerun.close()
    assert branches.files["step-000002"] == ["(committed just before the kill)"]  # not twice
    assert branches.files["step-000004"] == [
        "config.json", "loss.svg", "model.safetensors", "training_state",
        "training_state/builder_checkpoint.json", "training_state/optimizer.pt",
        "training_state/trainer_state.json",
    ]  # fmt: skip
    assert list(staged.iterdir()) == []


def _block_first_upload_until_step_4(monkeypatch):
    """The step-2 checkpoint's upload waits until the Trainer has saved step 4: if training
    waited for uploads, it would never get there (and the upload gives up after 60 s)."""
    from builder.stages.train import trainer as trainer_module

    reached_step_4, seen = threading.Event(), {}
    publish, on_save = BranchRevisions.publish, trainer_module._OnSave.on_save

    def slow_publish(self, folder, branch, facts, title):
        if branch == "step-000002":
            seen["training_went_on"] = reached_step_4.wait(timeout=60)
        seen.setdefault("threads", set()).add(threading.current_thread().name)
        return publish(self, folder, branch, facts, title)

    def watching_on_save(self, args, state, control, **kwargs):
        on_save(self, args, state, control, **kwargs)
        if state.global_step == 4:
            reached_step_4.set()

    monkeypatch.setattr(BranchRevisions, "publish", slow_publish)
    monkeypatch.setattr(trainer_module._OnSave, "on_save", watching_on_save)
    return seen


def _published_50k(fake_hub, tmp_path) -> str:
    """The published SFT dataset's shape on the fake Hub: a parquet file, no manifest of ours,
    instruction/response columns among others."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from huggingface_hub import HfApi

    repo = "bigcode/self-oss-instruct-sc2-exec-filter-50k"
    api = HfApi(token=fake_hub.token)
    if not api.repo_exists(repo, repo_type="dataset"):
        path = tmp_path / "train.parquet"
        rows = [{**r, "fingerprint": str(i), "id": i} for i, r in enumerate(pairs())]
        pq.write_table(pa.Table.from_pylist(rows), path)
        api.create_repo(repo, repo_type="dataset")
        api.upload_file(path_or_fileobj=str(path), path_in_repo="data/train-00000-of-00001.parquet",
                        repo_id=repo, repo_type="dataset")  # fmt: skip
    return repo


def test_checkpoints_are_published_while_training_runs(
    tiny_sc2, store_uri, tmp_path, monkeypatch, capsys, request
):
    seen = _block_first_upload_until_step_4(monkeypatch)
    if store_uri == "hf":
        data = _published_50k(request.getfixturevalue("fake_hub"), tmp_path)
    else:
        data = str(write_jsonl(tmp_path / "pairs.jsonl", pairs()))
    name = f"ckpt-{store_uri.split(':')[0]}"
    recipe = write_recipe(tmp_path, name, tiny_sc2, store_uri, data)
    assert run_cli("run", recipe, "--only", "train") == 0
    assert seen["training_went_on"] and seen["threads"] == {"publish-checkpoint_0"}

    store, repo = open_store(store_uri, "model"), f"tester/{name}-train"
    branches = store.refs(repo).branches
    assert sorted(branches) == ["main", "step-000002", "step-000004", "step-000006", "step-000008"]
    final = manifest(store, repo)
    assert final["training"]["steps"] == 8 and final["training"]["tokens_seen"] > 0
    assert [c["branch"] for c in final["checkpoints"]] == sorted(b for b in branches if b != "main")
    assert [e["step"] for e in final["log"]] == list(range(1, 9))
    assert final["dataset"]["format"] == "pairs" and final["dataset"]["conversations"] == 12
    if store_uri == "hf":
        assert final["dataset"]["repo"] == data and len(final["dataset"]["revision"]) == 40
    checkpoint = manifest(store, repo, "step-000004")
    assert checkpoint["checkpoint"] == {"step": 4} and checkpoint["branch"] == "step-000004"
    assert checkpoint["fingerprint"] == final["fingerprint"]
    assert [e["step"] for e in checkpoint["log"]] == [1, 2, 3, 4]
    files = set(store.list_files(repo, branches["step-000004"]))
    assert {"model.safetensors", "config.json", "tokenizer.json", "loss.svg",
            "training_state/optimizer.pt", "training_state/trainer_state.json"} <= files  # fmt: skip
    main_files = set(store.list_files(repo, branches["main"]))
    assert "model.safetensors" in main_files and not any(
        f.startswith("training_state/") for f in main_files
    )
    assert any(f.startswith("runs/") and "tfevents" in f for f in main_files)

    card = store.read_text(repo, branches["main"], "README.md")
    metadata = yaml.safe_load(card.split("---")[1])
    assert (
        metadata["library_name"] == "transformers" and metadata["pipeline_tag"] == "text-generation"
    )
    assert {"license", "tags"} <= set(metadata)
    assert (
        final["fingerprint"] in card
        and final["dataset"]["revision"] in card
        and "step-000006" in card
    )
    if store_uri == "hf":
        assert metadata["datasets"] == [data]

    # The published template renders in plain Jinja, as transformers renders it.
    from transformers import AutoTokenizer

    folder = materialize(store, repo, branches["main"], tmp_path / "final")
    template = (folder / "chat_template.jinja").read_text()
    assert "generation %}" not in template
    tokenizer = AutoTokenizer.from_pretrained(folder)
    chat = [{"role": "user", "content": "Reverse a string."}]
    plain = (
        jinja2.Environment()
        .from_string(template)
        .render(
            messages=chat,
            bos_token=tokenizer.bos_token,
            eos_token=tokenizer.eos_token,
            add_generation_prompt=True,
        )
    )
    assert plain == tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    assert plain.endswith("### Instruction\nReverse a string.\n\n### Response\n")

    capsys.readouterr()
    assert run_cli("store", "log", repo, "--model", "--store", store_uri) == 0
    assert "[step-000004]" in capsys.readouterr().out
    # unchanged step, unchanged input: nothing trains, nothing is published
    assert run_cli("run", recipe, "--only", "train") == 0
    assert store.refs(repo).branches == branches
    if store_uri != "hf":  # trained offline, then pushed to the Hub with every checkpoint
        monkeypatch.setenv("HF_TOKEN", request.getfixturevalue("fake_hub").token)
        push = ["store", "push", repo, "--model", "--store", store_uri, "--to", "hf"]
        assert run_cli(*push, "--to-repo", "tester/pushed-train") == 0
        hub = open_store("hf", "model")
        pushed = hub.refs("tester/pushed-train").branches
        assert sorted(pushed) == sorted(branches)
        for branch in branches:
            assert hub.list_files("tester/pushed-train", pushed[branch]) == store.list_files(
                repo, branches[branch]
            )
        assert run_cli(*push, "--to-repo", "tester/pushed-train") == 0  # nothing new
        assert hub.refs("tester/pushed-train").branches == pushed


KILL_AFTER_STEP = """
import os, signal, sys, time
import transformers
from builder.store import open_store

kill_at, wait_for, argv = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
after_step = transformers.Trainer._maybe_log_save_evaluate

def published(store, repo, branch):  # the branch exists before its commit lands
    if not store.repo_exists(repo) or branch not in store.refs(repo).branches:
        return False
    return store.read_text(repo, store.resolve(repo, branch), "manifest.json") is not None

def then_kill(self, *args, **kwargs):
    after_step(self, *args, **kwargs)
    if self.state.global_step == kill_at:
        if wait_for:  # "STORE REPO BRANCH": until that checkpoint revision is published
            uri, repo, branch = wait_for.split()
            store, deadline = open_store(uri, "model"), time.monotonic() + 120
            while time.monotonic() < deadline and not published(store, repo, branch):
                time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGKILL)

transformers.Trainer._maybe_log_save_evaluate = then_kill
from builder.cli import main
sys.exit(main(argv))
"""


def _run_killed(tmp_path, recipe, kill_at: int, wait_for: str = "") -> str:
    script = tmp_path / "kill_after_step.py"
    script.write_text(KILL_AFTER_STEP)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(script), str(kill_at), wait_for, "run", str(recipe), "--only", "train"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    return done.stderr


def _ends_as_uninterrupted(store, repo, whole_store, whole_repo, step: int, source: str):
    from safetensors.torch import load_file

    whole = manifest(whole_store, whole_repo)
    resumed = manifest(store, repo)
    assert resumed["training"]["resumed_from"]["step"] == step
    assert resumed["training"]["resumed_from"]["source"].startswith(source)
    assert resumed["training"]["steps"] == whole["training"]["steps"] == 8
    assert [e["step"] for e in resumed["log"]] == [e["step"] for e in whole["log"]]
    for mine, theirs in zip(resumed["log"], whole["log"]):
        assert mine["loss"] == pytest.approx(theirs["loss"], abs=1e-4)
    assert resumed["training"]["tokens_seen"] == whole["training"]["tokens_seen"]
    branches = store.refs(repo).branches
    assert sorted(branches) == sorted(whole_store.refs(whole_repo).branches)
    for branch in branches:  # no checkpoint published twice
        assert len(store.log(repo, branch)) == len(whole_store.log(whole_repo, branch))
    weights = [load_file(s.fetch(r, s.resolve(r), ["model.safetensors"])["model.safetensors"])
               for s, r in ((store, repo), (whole_store, whole_repo))]  # fmt: skip
    for name, tensor in weights[0].items():
        assert (tensor - weights[1][name]).abs().max() < 1e-4, name


@pytest.mark.slow
def test_kill_9_then_the_same_command_resumes_as_if_never_stopped(tiny_sc2, tmp_path, caplog):
    data = str(write_jsonl(tmp_path / "pairs.jsonl", pairs()))
    whole_uri, whole_repo = f"local:{tmp_path / 'whole' / 'store'}", "tester/whole-train"
    assert run_cli("run", write_recipe(tmp_path / "whole", "whole", tiny_sc2, whole_uri, data),
                   "--only", "train") == 0  # fmt: skip
    whole_store = open_store(whole_uri, "model")

    # Killed at step 5, once checkpoint 4 is in the store: step 5's work is lost.
    uri, repo = f"local:{tmp_path / 'a' / 'store'}", "tester/killed-train"
    recipe = write_recipe(tmp_path / "a", "killed", tiny_sc2, uri, data)
    _run_killed(tmp_path, recipe, kill_at=5, wait_for=f"{uri} {repo} step-000004")
    # The same state, less the work directory: only the store's checkpoint revisions are left.
    shutil.copytree(tmp_path / "a" / "store", tmp_path / "b" / "store", symlinks=True)
    uri_b = f"local:{tmp_path / 'b' / 'store'}"
    recipe_b = write_recipe(tmp_path / "b", "killed", tiny_sc2, uri_b, data)
    # The same state again, but the work directory's checkpoint 4 damaged behind its marker:
    # the store's copy of it is taken instead.
    shutil.copytree(tmp_path / "a", tmp_path / "c", symlinks=True)
    uri_c = f"local:{tmp_path / 'c' / 'store'}"
    recipe_c = write_recipe(tmp_path / "c", "killed", tiny_sc2, uri_c, data)
    [local_4] = (tmp_path / "c" / "work").rglob("checkpoint-4")
    weights = local_4 / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])

    runs = ((recipe, uri, "work directory"), (recipe_b, uri_b, "store (step-000004@"),
            (recipe_c, uri_c, "store (step-000004@"))  # fmt: skip
    for rerun, store_uri, source in runs:
        caplog.clear()
        assert run_cli("run", rerun, "--only", "train") == 0
        store = open_store(store_uri, "model")
        _ends_as_uninterrupted(store, repo, whole_store, whole_repo, 4, source)
    damaged = f"checkpoint {local_4} is damaged (model.safetensors: "
    assert any(damaged in r.getMessage() for r in caplog.records), caplog.text

    # Killed after its last checkpoint (8) is published, before the final model is: the rerun
    # trains nothing more (no step 9) and publishes what an uninterrupted run does.
    uri_d = f"local:{tmp_path / 'd' / 'store'}"
    recipe_d = write_recipe(tmp_path / "d", "killed", tiny_sc2, uri_d, data)
    _run_killed(tmp_path, recipe_d, kill_at=8, wait_for=f"{uri_d} {repo} step-000008")
    assert run_cli("run", recipe_d, "--only", "train") == 0
    store = open_store(uri_d, "model")
    _ends_as_uninterrupted(store, repo, whole_store, whole_repo, 8, "work directory")


def test_lora_publishes_the_adapter_and_the_merged_model(tiny_sc2, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    uri, repo = f"local:{tmp_path / 'store'}", "tester/lora-train"
    data = str(write_jsonl(tmp_path / "pairs.jsonl", pairs(4)))
    recipe = write_recipe(tmp_path, "lora", tiny_sc2, uri, data, use_peft=True,
                          publish_merged=True, lora={"r": 4, "lora_alpha": 16})  # fmt: skip
    assert run_cli("run", recipe, "--only", "train", "--set", "stages.train.sft.max_steps=2") == 0
    store = open_store(uri, "model")
    main = set(store.list_files(repo, "main"))
    assert {
        "model.safetensors",
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
    } <= main
    checkpoint = set(store.list_files(repo, "step-000002"))
    assert "adapter_model.safetensors" in checkpoint and "model.safetensors" not in checkpoint
    card = yaml.safe_load(
        store.read_text(repo, store.resolve(repo, "step-000002"), "README.md").split("---")[1]
    )
    assert card["library_name"] == "peft"
    assert manifest(store, repo)["lora"]["r"] == 4

    folder = materialize(store, repo, store.resolve(repo), tmp_path / "final")
    merged = AutoModelForCausalLM.from_pretrained(folder)
    adapted = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_sc2), folder / "adapter"
    )
    base = AutoModelForCausalLM.from_pretrained(tiny_sc2)
    ids = torch.tensor([[1, 5, 9, 30, 2]])
    with torch.no_grad():
        out_merged, out_adapted, out_base = (m(ids).logits for m in (merged, adapted, base))
    assert torch.allclose(out_merged, out_adapted, atol=1e-4)
    assert not torch.allclose(out_merged, out_base, atol=1e-4)  # the adapter did something


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no_usable_columns", "its columns: text, id"),
        ("empty", "has no rows"),
        ("no_assistant", "no usable conversation (no_assistant_turn: 1)"),
        ("missing_model", "model '/nonexistent/base' not found"),
        ("unknown_key", "stages.train.sft.learning_rte: unknown option"),
        ("lora_off", "stages.train.lora.r: a LoRA setting, but use_peft is false"),
        ("bad_value", "stages.train.sft:"),
        ("empty_responses", "no usable conversation (empty_assistant_turn: 2)"),
        ("json_input", "stages.train.input: "),
        ("folder_input", "is a folder the step does not read"),
        ("no_tokenizer", "has no tokenizer: none of tokenizer.json"),
        ("config_not_json", ": config.json is not JSON"),
        ("truncated_weights", ": model.safetensors is damaged"),
    ],
)
def test_bad_input_is_a_one_line_error_and_publishes_nothing(
    case, message, tiny_sc2, tmp_path, caplog
):
    uri = f"local:{tmp_path / 'store'}"
    rows = {"no_usable_columns": [{"text": "x", "id": 1}], "empty": [],
            "no_assistant": [{"messages": [{"role": "user", "content": "hi"}]}]}  # fmt: skip
    rows["empty_responses"] = [{**r, "response": " \n"} for r in pairs(2)]
    data = str(write_jsonl(tmp_path / "data.jsonl", rows.get(case, pairs(2))))
    if case == "json_input":
        data = str(write_jsonl(tmp_path / "sft.json", pairs(2)))
    elif case == "folder_input":
        data = str(tmp_path)
    model = "/nonexistent/base" if case == "missing_model" else tiny_sc2
    if case in ("no_tokenizer", "config_not_json", "truncated_weights"):
        model = shutil.copytree(tiny_sc2, tmp_path / "broken-model")
        if case == "no_tokenizer":
            for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
                (model / name).unlink(missing_ok=True)
        elif case == "config_not_json":
            (model / "config.json").write_text('{"model_type": "starcoder2",')
        else:
            weights = model / "model.safetensors"
            weights.write_bytes(weights.read_bytes()[:-1000])
    recipe = write_recipe(tmp_path, "bad", model, uri, data)
    overrides = {"unknown_key": "stages.train.sft.learning_rte=1", "lora_off": "stages.train.lora.r=8",
                 "bad_value": "stages.train.sft.optim=no_such_optimizer"}  # fmt: skip
    extra = ["--set", overrides[case]] if case in overrides else []
    assert run_cli("run", recipe, "--only", "train", *extra) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and message in errors[0] and "\n" not in errors[0], errors
    if case in ("no_tokenizer", "config_not_json", "truncated_weights"):
        assert str(tmp_path / "broken-model") in errors[0]  # the folder, named
    assert not open_store(uri, "model").repo_exists("tester/bad-train")


def test_evaluating_checkpoint_revisions_writes_their_own_cards(tiny_sc2, tmp_path):
    from tests.test_eval_grading import need_bwrap

    need_bwrap()
    uri, repo = f"local:{tmp_path / 'store'}", "tester/evaluated-train"
    data = str(write_jsonl(tmp_path / "pairs.jsonl", pairs(4)))
    recipe = write_recipe(tmp_path, "evaluated", tiny_sc2, uri, data)
    cache = ROOT / ".builder" / f"test-train-eval-{os.getpid()}"
    settings = yaml.safe_load(recipe.read_text())
    settings["stages"]["train"]["sft"]["max_steps"] = 4
    settings["stages"]["eval"] = {
        "input": "train", "checkpoints": True, "benchmarks": ["humaneval+"], "limit": 1,
        "max_tokens": 8, "cache_dir": str(cache), "repo": "tester/evaluated-scores",
    }  # fmt: skip
    recipe.write_text(yaml.safe_dump(settings))
    assert run_cli("run", recipe, "--only", "train") == 0
    store = open_store(uri, "model")
    trained = store.refs(repo).branches
    try:  # one checkpoint, from the command line
        assert run_cli("eval", "--model", f"{repo}@step-000002", "--store", uri, "--benchmarks",
                       "humaneval+", "--limit", "1", "--max-tokens", "8", "--cache-dir", cache) == 0  # fmt: skip
        once = store.refs(repo).branches
        assert {b for b in once if once[b] != trained[b]} == {"step-000002"}
        card = store.read_text(repo, once["step-000002"], "README.md")
        assert "model-index:" in card and "checkpoint at step 2" in card
        results = json.loads(
            open_store(uri).read_text("local/evaluated-train-eval", "main", "manifest.json")
        )
        assert results["model_revision"] == trained["step-000002"]
        # the final model and every checkpoint, from the recipe's eval step
        assert run_cli("run", recipe, "--only", "eval") == 0
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    every = store.refs(repo).branches
    assert {b for b in every if every[b] != once[b]} == {"main", "step-000002", "step-000004"}
    for branch in every:
        assert "model-index:" in store.read_text(repo, every[branch], "README.md")
    scores = open_store(uri)
    manifest_text = scores.read_text("tester/evaluated-scores", "main", "manifest.json")
    assert sorted(json.loads(manifest_text)["checkpoints"]) == ["step-000002", "step-000004"]
    files = scores.list_files("tester/evaluated-scores", "main")
    assert any(f.startswith("checkpoints/step-000004/data/") for f in files)
    assert "## Checkpoints" in scores.read_text("tester/evaluated-scores", "main", "README.md")


@pytest.fixture
def small_disk(tmp_path):
    """A real 384 KiB filesystem (tmpfs), where mounting one is allowed (root)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=384k", "tmpfs", str(mount)],
                          capture_output=True, check=False)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    # Lazily: torch keeps the file that did not fit open for as long as this process lives.
    subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_work_dir_that_fills_up_while_the_trainer_saves_is_one_line(
    tiny_sc2, tmp_path, small_disk, caplog
):
    uri = f"local:{tmp_path / 'store'}"
    data = str(write_jsonl(tmp_path / "pairs.jsonl", pairs(4)))
    recipe = write_recipe(tmp_path, "full", tiny_sc2, uri, data)
    assert run_cli("run", recipe, "--only", "train", "--set", f"work_dir={small_disk}") == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == [f"no space left on {small_disk}"], errors


def _fake_checkpoint(folder, step: int):
    import torch
    from safetensors.torch import save_file

    from builder.stages.train.checkpoints import MARKER

    folder.mkdir(parents=True)
    save_file({"w": torch.ones(64)}, folder / "model.safetensors")
    torch.save({"state": {0: torch.zeros(64)}}, folder / "optimizer.pt")
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step, "max_steps": 8}))
    (folder / MARKER).write_text(json.dumps({"step": step, "wall_time_s": 1.0}))
    return folder


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        ("model.safetensors", "model.safetensors: "),
        ("optimizer.pt", "optimizer.pt: not a readable torch file"),
        ("trainer_state.json", "trainer_state.json: "),
    ],
)
def test_a_damaged_local_checkpoint_falls_back_to_the_last_good_one(damage, named, tmp_path, caplog):
    from builder.stages.train.checkpoints import find_resume_point

    trainer_dir = tmp_path / "trainer"
    _fake_checkpoint(trainer_dir / "checkpoint-2", 2)
    newest = _fake_checkpoint(trainer_dir / "checkpoint-4", 4)
    data = (newest / damage).read_bytes()
    (newest / damage).write_bytes(data[: len(data) // 2])
    point = find_resume_point(trainer_dir, None)  # no store copy: the older local one
    assert point.step == 2 and point.source == "work directory" and not point.finished
    assert (trainer_dir / "damaged-checkpoint-4").is_dir() and not newest.exists()
    assert f"checkpoint-4 is damaged ({named}" in caplog.text
