"""Training itself (imported only when the `train` step runs: torch, transformers, TRL, PEFT).

`build_trainer` is TRL's SFTTrainer on conversations rendered with our chat template (the loss
on assistant tokens only, TRL's `assistant_only_loss`); `run_training` adds what the step
needs around it: resuming, checkpoint revisions published while training runs, the progress
bar, and the final model written for the publisher (with LoRA: the adapter, and the merged
model when asked).
"""

from __future__ import annotations

import logging
import sys
import time
import typing
from importlib import metadata
from pathlib import Path
from typing import Any

from transformers import PrinterCallback, ProgressCallback, TrainerCallback

from builder.errors import StageError
from builder.stages.train.chat_format import inference_template, training_template
from builder.stages.train.checkpoints import (
    BRANCH_PREFIX,
    CheckpointPublisher,
    find_resume_point,
    step_of,
)
from builder.stages.train.data import conversations, row_format
from builder.stages.train.final import load_finished, save_final
from builder.stages.train.metrics import loss_svg, write_tensorboard
from builder.stages.train.model_card import training_facts
from builder.stages.train.params import TrainParams, check_names, option_names
from builder.stages.train.progress import ProgressBar

log = logging.getLogger(__name__)

# PEFT's defaults but these: a causal LM, and every linear layer but the output one adapted
# (PEFT knows no default layers for some architectures, Starcoder2 among them).
LORA_DEFAULTS = {"task_type": "CAUSAL_LM", "target_modules": "all-linear"}
# SFTConfig options left out of manifests and cards: this machine's folders, or a secret.
_MACHINE_SPECIFIC = ("output_dir", "logging_dir", "hub_token", "hub_model_id")


def make_sft_config(params: TrainParams, output_dir: Path, **overrides: Any):
    from trl import SFTConfig

    check_names(params, option_names())
    options = _numbers(
        {**params.sft_options(), **overrides, "output_dir": str(output_dir)}, SFTConfig
    )
    try:
        return SFTConfig(**options)
    except (ValueError, TypeError) as err:
        raise StageError(f"stages.train.sft: {_first_line(err)}") from None


def _numbers(options: dict[str, Any], config_class) -> dict[str, Any]:
    """YAML reads `1e-5` (no dot) as a string: a numeric option given as text becomes a number."""
    kinds = typing.get_type_hints(config_class)  # PEFT's annotations are strings
    for key, value in options.items():
        kind = kinds.get(key)
        wanted = {t for t in (typing.get_args(kind) or (kind,)) if t in (int, float)}
        if not isinstance(value, str) or not wanted:
            continue
        try:
            number = float(value)
        except ValueError:
            continue  # the config's own check names it
        integral = float not in wanted and number.is_integer()
        options[key] = int(number) if integral else number
    return options


def lora_config(params: TrainParams):
    if not params.use_peft:
        return None
    from peft import LoraConfig

    try:
        return LoraConfig(**_numbers({**LORA_DEFAULTS, **params.lora}, LoraConfig))
    except (ValueError, TypeError) as err:
        raise StageError(f"stages.train.lora: {_first_line(err)}") from None


def load_tokenizer(path: str, revision: str | None):
    """The base model's tokenizer with our chat template (the training one, markers and all)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, revision=revision)
    if tokenizer.eos_token is None:
        raise StageError(f"the tokenizer of {path} has no end-of-text token (eos_token)")
    tokenizer.chat_template = training_template()
    return tokenizer


def own_template_rows(dialogues: list, tokenizer) -> list[dict[str, str]]:
    """Conversations as prompt/completion text in the model's own chat template: the prompt is
    every turn but the last, opened for the assistant; the completion is the last turn as the
    template closes it (its end-of-turn token included, the newline after it not), so TRL's
    completion-only loss covers the response and its end of turn, nothing else."""
    rows = []
    for turns in dialogues:
        if isinstance(turns, dict):  # already prompt/completion text
            rows.append(turns)
            continue
        prompt = tokenizer.apply_chat_template(
            turns[:-1], tokenize=False, add_generation_prompt=True
        )
        full = tokenizer.apply_chat_template(turns, tokenize=False)
        if not full.startswith(prompt):
            raise StageError(
                "train: the model's chat template renders a conversation that does not start "
                "with its own prompt; use stages.train.chat_template: starcoder2"
            )
        rows.append({"prompt": prompt, "completion": full[len(prompt) :].rstrip("\n")})
    return rows


def build_trainer(
    model, args, dialogues: list, tokenizer, peft_config=None, callbacks=(), own_template=False
):
    """TRL's SFTTrainer on `dialogues` (lists of role/content turns). The dataset is tokenized
    here, with the training template; the tokenizer then gets the inference template, which is
    what every saved checkpoint and the final model carry. With `own_template`, the dialogues
    are prompt/completion text in the model's own template, which the tokenizer keeps."""
    from datasets import Dataset
    from trl import SFTTrainer

    rows = [d if isinstance(d, dict) else {"messages": d} for d in dialogues]
    dataset = Dataset.from_list(rows)
    try:
        trainer = SFTTrainer(
            model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
            peft_config=peft_config, callbacks=list(callbacks),
        )  # fmt: skip
    except ValueError as err:  # settings that do not go together (TRL's and PEFT's checks)
        raise StageError(f"stages.train: {_first_line(err)}") from None
    if not own_template:
        tokenizer.chat_template = inference_template()
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(ProgressBar())
    return trainer


class _OnSave(TrainerCallback):
    """Hands each saved checkpoint to the publisher, with the training time that led to it."""

    def __init__(self, publisher: CheckpointPublisher, wall_time_before: float):
        self.publisher, self.before, self.started = publisher, wall_time_before, time.monotonic()

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.monotonic()

    def on_save(self, args, state, control, **kwargs):
        path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        elapsed = self.before + time.monotonic() - self.started
        self.publisher.saved(path, state.global_step, list(state.log_history), elapsed)


def run_training(step, job) -> dict[str, Any]:
    """The `train` step's work: returns the manifest facts of the final revision."""
    params: TrainParams = step.params
    trainer_dir = job.work / "trainer"
    args = make_sft_config(params, trainer_dir)
    peft_config = lora_config(params)
    source = job.source
    kind = row_format(source.columns, source.describe())
    dialogues, left_out = conversations(source.iter_rows(), kind, params.limit)
    if kind == "completions":  # no turns: the loss on the completions (TRL's own default)
        args.assistant_only_loss = False
    if not dialogues:
        detail = ", ".join(f"{r}: {n}" for r, n in sorted(left_out.items())) or "no rows"
        raise StageError(
            f"training input {source.describe()} has no usable conversation ({detail})"
        )
    base = step.base
    hub_revision = None if base.local else base.revision
    if hub_revision:
        args.model_init_kwargs = {**(args.model_init_kwargs or {}), "revision": hub_revision}
    own_template = step.chat_template() == "model"
    if own_template:  # the base model's own chat template, kept: prompt/completion text
        from builder.engines.model import chat_tokenizer

        tokenizer = chat_tokenizer(base.path, hub_revision)
        dialogues = own_template_rows(dialogues, tokenizer)
        args.assistant_only_loss = False  # TRL's completion-only loss does the same
    else:
        tokenizer = load_tokenizer(base.path, hub_revision)
    _cpu_threads(step.context)
    static = {
        "dataset": {**source.ref, "format": kind, "conversations": len(dialogues),
                    "left_out": dict(left_out)},
        "method": "lora" if params.use_peft else "full",
        "chat_template": step.chat_template(),
        "hyperparameters": _options(args),
        "lora": peft_config.to_dict() if peft_config is not None else None,
        "versions": _versions(),
    }  # fmt: skip

    def describe(at_step: int, history: list, folder: Path) -> dict:
        _write_log_files(folder, history)
        return {**static, **training_facts(history), "checkpoint": {"step": at_step}}

    publisher = CheckpointPublisher(job.work, job.revisions, describe)
    try:
        publisher.publish_left_over()
        resume = find_resume_point(trainer_dir, job.revisions)
        if resume is not None:
            log.info("train: resuming from step %d (%s)", resume.step, resume.source)
        before = resume.wall_time_s if resume else 0.0
        trainer = build_trainer(
            base.path, args, dialogues, tokenizer, peft_config, [_OnSave(publisher, before)],
            own_template,
        )  # fmt: skip
        started = time.monotonic()
        if resume is not None and resume.finished:
            load_finished(trainer, resume.path)
        else:
            trainer.train(resume_from_checkpoint=str(resume.path) if resume else None)
        wall_time = before + time.monotonic() - started
        files = save_final(trainer, tokenizer, job.output, params.publish_merged)
        publisher.wait()
    finally:
        publisher.close(cancel_pending=sys.exc_info()[0] is not None)
    history = trainer.state.log_history
    _write_log_files(job.output, history)
    published = job.revisions.published(BRANCH_PREFIX) if job.revisions is not None else {}
    checkpoints = sorted(
        ({"step": step_of(b), "branch": b, "commit": c} for b, (c, _) in published.items()),
        key=lambda c: c["step"],
    )
    facts = training_facts(history)
    return {
        **static,
        **facts,
        "training": {
            **facts["training"],
            "examples": len(trainer.train_dataset),
            "wall_time_s": round(wall_time, 2),
            "resumed_from": {"step": resume.step, "source": resume.source} if resume else None,
        },
        "checkpoints": checkpoints,
        "files": files,
    }


def _cpu_threads(context) -> None:
    """On CPU, the recipe's `engine.cpu_threads` (a tiny model on a few cores trains several
    times faster on one thread than on threads that wait on each other)."""
    import torch

    threads = context.engine.cpu_threads
    if threads and not torch.cuda.is_available():
        torch.set_num_threads(threads)


def _write_log_files(folder: Path, history: list) -> None:
    (folder / "loss.svg").write_text(loss_svg(history))
    write_tensorboard(folder / "runs", history)


def _options(args) -> dict[str, Any]:
    options = args.to_dict()
    for key in _MACHINE_SPECIFIC:
        options.pop(key, None)
    return options


def _versions() -> dict[str, str]:
    from builder.pipeline.versions import software_versions

    versions = software_versions()
    for package in ("peft", "accelerate", "tensorboardX"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
