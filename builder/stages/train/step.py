"""`train`: supervised fine-tuning of a base model on the recipe's conversations, with TRL's
SFTTrainer, published as a model repository (`<namespace>/<recipe>-train`, or `repo`).

Its input is a stage of the recipe (`select` by default), a dataset repository or a local file
(`data.py`); its settings are TRL's and PEFT's own options (`params.py`). While training runs,
every checkpoint the Trainer saves is published as a branch `step-NNNNNN` of the repository
without waiting for the upload (`checkpoints.py`); the final model goes to `main` with a card
that says what it was trained on and how (`model_card.py`). A killed run resumes from its last
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
from builder.stages.train.chat_format import TEMPLATE_FILE
from builder.stages.train.data import open_training_input
from builder.stages.train.model_card import render_card
from builder.stages.train.params import TrainParams, check_names, option_names


@dataclass(frozen=True)
class BaseModel:
    name: str  # as cards name it: a Hub id, a store repository, a local folder's own name
    revision: str  # pinned
    path: str  # what from_pretrained reads: a Hub id or a local folder
    local: bool  # a folder here: no revision to pass to from_pretrained
    source: dict | None = None  # a GGUF file's lineage (engines.model.ModelRef.source)


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
            inputs, self.params.model or self.context.model, self.params.revision, self.context
        )
        return open_training_input(inputs, self.params.input or "select", self.params.split)

    def repo_name(self) -> str | None:
        return self.params.repo

    def chat_template(self) -> str:
        """`starcoder2` (ours replaces the model's) or `model` (the model's own is kept)."""
        if self.params.chat_template is not None:
            return self.params.chat_template
        return "model" if self.context.prompting == "chat" else "starcoder2"

    def fingerprint_extra(self) -> dict[str, Any]:
        if self.base is None:
            raise StageError("train: the base model is pinned by open_input first")
        if self.chat_template() == "model":  # the model's revision pins its template
            template = "model"
        else:
            template = hashlib.sha256(TEMPLATE_FILE.read_bytes()).hexdigest()[:16]
        base = {"name": self.base.name, "revision": self.base.revision}
        if self.base.source is not None:
            base["gguf"] = self.base.source
        return {"base_model": base, "chat_template": template}

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


def _pin_model(inputs, name: str, revision: str | None, context) -> BaseModel:
    """The base model, pinned: a model repository of the recipe's store (its files in a local
    folder), else a Hub id, a local folder or a GGUF file (converted once under work_dir)."""
    from builder.engines.model_folder import check_model_folder
    from builder.pipeline.input_sources import ModelInput

    if not name:
        raise StageError("stages.train: no base model (set `model` in the recipe or the step)")
    if inputs.has_model(name):
        pinned = inputs.model_repo(name, revision or "main")
        return BaseModel(name, pinned.revision, pinned.path, local=True)
    # a local folder is named by its own name only
    pinned = ModelInput(name, revision, work_dir=context.work_dir, origin=context.model_origin)
    local = Path(name).expanduser().exists()
    if local and pinned.source is None:  # a folder (a GGUF file's is made by us)
        check_model_folder(Path(pinned.path))
    return BaseModel(pinned.name, pinned.revision, pinned.path, local, pinned.source)


def _loss(training: dict) -> str:
    loss = training.get("final_loss")
    return f"{loss:.4f}" if isinstance(loss, float) else "-"
