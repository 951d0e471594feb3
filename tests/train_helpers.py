"""Helpers of the training tests: a tiny Starcoder2 built on the spot, training data, recipes."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.helpers import head_manifest

ROOT = Path(__file__).resolve().parents[1]

# A few optimizer steps on CPU in float32, a checkpoint every 2 steps.
SFT = {
    "max_steps": 8,
    "per_device_train_batch_size": 2,
    "learning_rate": 1e-3,
    "save_steps": 2,
    "bf16": False,
    "gradient_checkpointing": False,
    "dataloader_pin_memory": False,
    "use_cpu": True,
    "seed": 0,
}


def build_tiny_starcoder2(folder: Path, hidden: int = 32, vocab: int = 384) -> Path:
    """A 2-layer Starcoder2 with random weights and a byte-level BPE trained on this package's
    stage sources (no download)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Starcoder2Config, Starcoder2ForCausalLM

    folder.mkdir(parents=True, exist_ok=True)
    texts = [p.read_text() for p in sorted((ROOT / "builder" / "stages").rglob("*.py"))]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab, special_tokens=["<|endoftext|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )  # fmt: skip
    bpe.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|endoftext|>", bos_token="<|endoftext|>"
    )
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = Starcoder2Config(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
        num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
        max_position_embeddings=512, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    Starcoder2ForCausalLM(config).save_pretrained(folder)
    return folder


def pairs(count: int = 12) -> list[dict]:
    return [
        {
            "instruction": f"Write a function `f{i}` that returns {i}.",
            "response": f"```python\ndef f{i}():\n    return {i}\n```",
            "seed": f"def g{i}(): ...",  # columns the trainer ignores, as in published datasets
        }
        for i in range(count)
    ]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_recipe(folder: Path, name: str, model: Path, store: str, data: str, **train) -> Path:
    """A recipe of one `train` step; its model repository is `tester/<name>-train`."""
    recipe = {
        "name": name,
        "model": str(model),
        "hub": {"store": store, "namespace": "tester"},
        "work_dir": str(folder / "work"),
        "stages": {"train": {"input": data, "sft": dict(SFT), **train}},
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def manifest(store, repo: str, revision: str = "main") -> dict:
    return head_manifest(store, repo, revision)
