"""The model card of a training revision (a checkpoint or the final model): YAML the Hub
understands (`base_model`, `datasets`, `library_name`, `license`, `tags`, `pipeline_tag`), then
what a reader needs to trust and reuse it: the dataset repository and revision it was trained on,
the base model and its revision, the recipe and step fingerprints, every hyperparameter, tokens
seen, wall time, software versions, and the training loss by step as a plot and a table.
`builder eval` adds `model-index` to it later, leaving the rest as it is.
"""

from __future__ import annotations

import json
import re

import yaml

from builder.stages.train.metrics import format_value, loss_table, step_rows

# Hyperparameters shown in the card's short table (all of them are in the details below it).
_KEY_OPTIONS = (
    "learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
    "gradient_accumulation_steps", "optim", "lr_scheduler_type", "warmup_steps", "weight_decay",
    "max_grad_norm", "max_length", "packing", "bf16", "gradient_checkpointing", "seed",
    "assistant_only_loss",
)  # fmt: skip
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def training_facts(history: list[dict]) -> dict:
    """Manifest facts from the Trainer's log: progress, and the per-step log itself."""
    rows = step_rows(history)
    last = rows[-1] if rows else {}
    return {
        "training": {
            "steps": last.get("step", 0),
            "epochs": last.get("epoch"),
            "tokens_seen": last.get("num_input_tokens_seen"),
            "final_loss": last.get("loss"),
        },
        "log": rows,
    }


def render_card(manifest: dict, license: str) -> str:
    return (
        "---\n"
        + yaml.safe_dump(_metadata(manifest, license), sort_keys=False)
        + "---\n\n"
        + _body(manifest)
    )


def _is_adapter(manifest: dict) -> bool:
    files = manifest.get("files") or {}
    return manifest["method"] == "lora" and (
        "checkpoint" in manifest or files.get("adapter") == "."
    )


def _metadata(manifest: dict, license: str) -> dict:
    base = manifest["settings"]["base_model"]
    data = manifest["dataset"]
    metadata: dict = {}
    if _HUB_ID.match(base["name"]):
        metadata["base_model"] = base["name"]
        metadata["base_model_relation"] = "adapter" if _is_adapter(manifest) else "finetune"
    if data["kind"] in ("store", "hub"):
        metadata["datasets"] = [data["repo"]]
    metadata.update(
        library_name="peft" if _is_adapter(manifest) else "transformers",
        license=license,
        tags=["code", "code-instruct-builder", "trl", "sft"]
        + (["lora"] if manifest["method"] == "lora" else []),
        pipeline_tag="text-generation",
    )
    return metadata


def _body(manifest: dict) -> str:
    repo = manifest["repo"]
    base, data, training = (
        manifest["settings"]["base_model"],
        manifest["dataset"],
        manifest["training"],
    )
    checkpoint = manifest.get("checkpoint")
    where = data.get("repo") or data.get("path")
    title = f"# {repo.split('/')[-1]}" + (
        f" (checkpoint at step {checkpoint['step']})" if checkpoint else ""
    )
    method = "LoRA" if manifest["method"] == "lora" else "full"
    lines = [
        title,
        "",
        (
            f"`{base['name']}` fine-tuned ({method} fine-tuning, TRL's SFTTrainer) on `{where}`, "
            "in the StarCoder2-Instruct chat format (`### Instruction` / `### Response`, the "
            "response ending with the end-of-text token; the loss covers the response tokens and "
            "that token only)."
        ),
        "",
    ]
    if checkpoint:
        lines += [
            (
                f"This revision is the checkpoint saved at step {checkpoint['step']}, published "
                "while training went on; `main` holds the final model. `training_state/` holds "
                "what resuming needs (optimizer, scheduler, RNG and trainer state); "
                "`from_pretrained` does not download it."
            ),
            "",
        ]
    lines += _lineage(manifest, where) + _usage(manifest) + _progress(manifest, training)
    lines += _hyperparameters(manifest) + _loss(manifest) + _checkpoints(manifest)
    lines += ["## Software", "", "| package | version |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in manifest["versions"].items()]
    lines += ["", "`manifest.json` holds these facts for machines.", ""]
    return "\n".join(lines)


def _lineage(manifest: dict, where: str) -> list[str]:
    base, data, recipe = manifest["settings"]["base_model"], manifest["dataset"], manifest["recipe"]
    left_out = ", ".join(f"{r}: {n}" for r, n in sorted(data["left_out"].items())) or "none"
    return [
        "## Lineage",
        "",
        f"- Base model: `{base['name']}` at revision `{base['revision']}`",
        (
            f"- Dataset: `{where}` at revision `{data['revision']}` ({data['kind']}; "
            f"{data['format']}), {data['conversations']:,} conversations (left out: {left_out})"
        ),
        f"- Recipe: `{recipe['name']}` from `{recipe['file']}`, fingerprint `{recipe['fingerprint']}`",
        (
            f"- Step: `{manifest['stage']}` (version {manifest['stage_version']}), fingerprint "
            f"`{manifest['fingerprint']}`"
        ),
        f"- Published: {manifest['created_at']}",
        "",
    ]


def _usage(manifest: dict) -> list[str]:
    repo = manifest["repo"]
    revision = f', revision="{manifest["branch"]}"' if manifest.get("branch") else ""
    return [
        "## Use",
        "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        f'tokenizer = AutoTokenizer.from_pretrained("{repo}"{revision})',
        f'model = AutoModelForCausalLM.from_pretrained("{repo}"{revision})',
        'messages = [{"role": "user", "content": "Write a function that reverses a string."}]',
        "prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)",
        "```",
        "",
        "The tokenizer's chat template is plain Jinja (vLLM, llama.cpp and TGI render it)."
        + (
            " With LoRA, `peft` must be installed: the repository holds the adapter."
            if _is_adapter(manifest)
            else ""
        ),
        "",
    ]


def _progress(manifest: dict, training: dict) -> list[str]:
    rows = [("optimizer steps", training["steps"]), ("epochs", training["epochs"]),
            ("tokens seen (not padding)", training["tokens_seen"]),
            ("final training loss", training["final_loss"])]  # fmt: skip
    for key, label in (("examples", "training examples (after truncation)"),
                       ("wall_time_s", "wall time (s)")):  # fmt: skip
        if key in training:
            rows.append((label, training[key]))
    if training.get("resumed_from"):
        resumed = training["resumed_from"]
        rows.append(("resumed", f"from step {resumed['step']}, {resumed['source']}"))
    lines = ["## Training", "", "| | |", "| --- | ---: |"]
    lines += [f"| {label} | {format_value(value)} |" for label, value in rows]
    return lines + [""]


def _hyperparameters(manifest: dict) -> list[str]:
    options = manifest["hyperparameters"]
    lines = ["## Hyperparameters", "", "| option (TRL `SFTConfig`) | value |", "| --- | --- |"]
    lines += [f"| `{k}` | `{options[k]}` |" for k in _KEY_OPTIONS if k in options]
    lines.append("")
    if manifest.get("lora"):
        lora = {k: v for k, v in manifest["lora"].items() if v not in (None, {}, [])}
        lines += ["LoRA (PEFT `LoraConfig`):", "", *_json_block(lora)]
    lines += [
        "<details><summary>Every option</summary>",
        "",
        *_json_block(options),
        "</details>",
        "",
    ]
    return lines


def _loss(manifest: dict) -> list[str]:
    if not manifest["log"]:
        return []
    return [
        "## Training loss",
        "",
        "![training loss by step](loss.svg)",
        "",
        "The same log is in `runs/` as TensorBoard event files (the Hub's Training metrics tab).",
        "",
        "<details><summary>Every step</summary>",
        "",
        *loss_table(manifest["log"]),
        "",
        "</details>",
        "",
    ]


def _checkpoints(manifest: dict) -> list[str]:
    checkpoints = manifest.get("checkpoints")
    if not checkpoints:
        return []
    lines = ["## Checkpoints", "", "Each saved checkpoint is a branch of this repository:", "",
             "| revision | step | commit |", "| --- | ---: | --- |"]  # fmt: skip
    lines += [f"| `{c['branch']}` | {c['step']} | `{c['commit'][:12]}` |" for c in checkpoints]
    return lines + [""]


def _json_block(data: dict) -> list[str]:
    return ["```json", json.dumps(data, indent=1, sort_keys=True, default=str), "```", ""]
