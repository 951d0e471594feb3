"""`train`: supervised fine-tuning of a base model on the recipe's conversations, with TRL's
SFTTrainer, published as a model repository (`<namespace>/<recipe>-train`, or `repo`).

Its input is a stage of the recipe (`select` by default), a dataset repository or a local file
(`data.py`); its settings are TRL's and PEFT's own options (`params.py`). While training runs,
every checkpoint the Trainer saves is published as a branch `step-NNNNNN` of the repository
without waiting for the upload (`checkpoints.py`); the final model goes to `main` with a card
that says what it was trained on and how (`card.py`). A killed run resumes from its last
checkpoint, in the work directory or, when that is gone, in the store; an unchanged step on an
unchanged input trains nothing.

Not covered: several machines or processes (`accelerate launch`, FSDP, DeepSpeed): the step
trains in the process that runs it, on the devices that process sees. Evaluation data during
training (`eval_strategy`) is not split off the input.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.errors import StageError
from builder.pipeline.step import Step, StepRun
from builder.registry import STEPS
from builder.stages.train.card import render_card
from builder.stages.train.chat_format import TEMPLATE_FILE
from builder.stages.train.data import open_training_input
from builder.stages.train.params import TrainParams, check_names, option_names


@dataclass(frozen=True)
class BaseModel:
    name: str  # as cards name it: a Hub id, a store repository, a local folder's own name
    revision: str  # pinned
    path: str  # what from_pretrained reads: a Hub id or a local folder
    local: bool  # a folder here: no revision to pass to from_pretrained


class TrainStep(Step):
    name = "train"
    kind = "model"
    params_class = TrainParams
    description = "A model fine-tuned on the recipe's conversations (TRL SFT)."

    params: TrainParams
    base: BaseModel | None = None  # pinned by open_input

    def open_input(self, inputs):
        try:
            check_names(self.params, option_names())
        except ImportError as err:
            raise STEPS.missing("train", err) from None
        self.base = _pin_model(
            inputs, self.params.model or self.context.model, self.params.revision
        )
        return open_training_input(inputs, self.params.input or "select", self.params.split)

    def repo_name(self) -> str | None:
        return self.params.repo

    def fingerprint_extra(self) -> dict[str, Any]:
        if self.base is None:
            raise StageError("train: the base model is pinned by open_input first")
        template = hashlib.sha256(TEMPLATE_FILE.read_bytes()).hexdigest()[:16]
        return {
            "base_model": {"name": self.base.name, "revision": self.base.revision},
            "chat_template": template,
        }

    def run(self, job: StepRun) -> dict[str, Any]:
        from builder.stages.train.trainer import run_training

        return run_training(self, job)

    def card(self, manifest: dict[str, Any]) -> str:
        return render_card(manifest, self.params.license)

    def commit_title(self, manifest: dict[str, Any], source: str) -> str:
        training = manifest["training"]
        return f"train: {training['steps']} steps on {source}, final loss {_loss(training)}"

    def summary(self, manifest: dict[str, Any]) -> str:
        training = manifest["training"]
        return f"{training['steps']} steps, {training['tokens_seen'] or 0:,} tokens, loss {_loss(training)}"


def _pin_model(inputs, name: str, revision: str | None) -> BaseModel:
    """The base model, pinned: a model repository of the recipe's store (its files in a local
    folder), else a Hub id or a local folder."""
    from builder.pipeline.inputs import ModelInput

    if not name:
        raise StageError("stages.train: no base model (set `model` in the recipe or the step)")
    if inputs.has_model(name):
        pinned = inputs.model_repo(name, revision or "main")
        return BaseModel(name, pinned.revision, pinned.path, local=True)
    pinned = ModelInput(name, revision)  # a local folder is named by its own name only
    return BaseModel(pinned.name, pinned.revision, pinned.path, Path(name).expanduser().exists())


def _loss(training: dict) -> str:
    loss = training.get("final_loss")
    return f"{loss:.4f}" if isinstance(loss, float) else "-"
