"""The `train` step's recipe keys, checked when the recipe is loaded.

`sft` holds TRL's `SFTConfig` options and `lora` PEFT's `LoraConfig` options, under their own
names: a key the installed library does not have is refused with its dotted name. The names are
read from the installed classes once per library version and kept in a small cache file, so that
loading a recipe does not import torch (about 10 s) each time. Where TRL is not installed, names
are checked when the step runs instead (which then says which extra to install).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from builder.config.fields import runtime_only
from builder.errors import RecipeError
from builder.pipeline.step import StepParams

log = logging.getLogger(__name__)

# What the step needs that differs from TRL's defaults; any of these may be overridden in `sft`.
SFT_DEFAULTS: dict[str, Any] = {
    "assistant_only_loss": True,  # the loss covers the responses and their end-of-text token
    "logging_steps": 1,  # the card's loss table has every step
    "save_strategy": "steps",
    "include_num_input_tokens_seen": "non_padding",  # tokens seen survive a resume
    "report_to": "none",  # TensorBoard files are written from the training log when publishing
}

# Options the step sets itself: where checkpoints go and how they are published.
RESERVED = {
    "output_dir": "checkpoints go to the work directory, and revisions to the store",
    "resume_from_checkpoint": "the step resumes from its last checkpoint by itself",
    "push_to_hub": "the step publishes every checkpoint through the store",
    "hub_model_id": "the repository is `stages.train.repo`",
    "hub_strategy": "the step publishes every checkpoint through the store",
    "hub_revision": "checkpoints go to branches step-NNNNNN",
    "hub_token": "the store's token is used",
    "hub_private_repo": "`hub.private` decides",
    "hub_always_push": "the step publishes every checkpoint through the store",
}


@dataclass
class TrainParams(StepParams):
    # A stage of the recipe, a dataset repo[@revision] (the store's, else the Hub's), or a
    # local .jsonl / .parquet file.
    input: str | None = runtime_only("select")
    split: str = "train"  # of a dataset repository
    model: str | None = None  # the base model; None: the recipe's `model`
    revision: str | None = None  # of the base model on the Hub; None: main, pinned at start
    sft: dict[str, Any] = field(default_factory=dict)  # TRL SFTConfig options
    use_peft: bool = False  # LoRA (TRL's name for it); False: full fine-tuning
    lora: dict[str, Any] = field(default_factory=dict)  # PEFT LoraConfig options
    publish_merged: bool = False  # LoRA: main holds the merged model, the adapter in adapter/
    # `starcoder2`: StarCoder2-Instruct's turns (our chat_template.jinja) replace the model's;
    # `model`: the base model's own chat template is kept (an instruct model's, which it already
    # follows); None: `model` under the recipe's `prompting: chat`, else `starcoder2`.
    chat_template: Literal["starcoder2", "model"] | None = None
    repo: str | None = runtime_only(None)  # None: <namespace>/<recipe>-train
    license: str = runtime_only("other")  # the model card's license

    def __post_init__(self) -> None:
        if self.input and not is_data_file(self.input) and looks_like_a_path(self.input):
            what = "a folder" if Path(self.input).expanduser().is_dir() else "a file"
            raise RecipeError(
                f"stages.train.input: {self.input} is {what} the step does not read; it reads "
                "a .jsonl or .parquet file, a dataset repository (NAMESPACE/NAME[@REVISION]) "
                "or a stage of the recipe"
            )
        for key, why in RESERVED.items():
            if key in self.sft:
                raise RecipeError(f"stages.train.sft.{key}: set by the train step ({why})")
        if not self.use_peft and (self.lora or self.publish_merged):
            key = f"lora.{next(iter(self.lora))}" if self.lora else "publish_merged"
            raise RecipeError(f"stages.train.{key}: a LoRA setting, but use_peft is false")
        names = option_names(required=False)
        if names is not None:
            check_names(self, names)

    def input_stage_name(self) -> str | None:
        """The recipe stage its input names, or None for a dataset repository or a file."""
        spec = self.input or ""
        if "/" in spec or is_data_file(spec):
            return None
        return spec.partition("@")[0] or None

    def sft_options(self) -> dict[str, Any]:
        return {**SFT_DEFAULTS, **self.sft}


def is_data_file(spec: str) -> bool:
    return spec.endswith((".jsonl", ".parquet"))


# Data file suffixes a user may try that the step does not read (a repository id may hold dots,
# as in `SmolLM2-1.7B`, so only these count as "a file").
_OTHER_DATA_SUFFIXES = (
    ".json", ".csv", ".tsv", ".txt", ".arrow", ".feather", ".gz", ".zip", ".bz2", ".xz",
    ".zst", ".pkl", ".xlsx", ".yaml", ".yml",
)  # fmt: skip


def looks_like_a_path(spec: str) -> bool:
    """A file or folder on this machine, or a name that can only be a file or folder."""
    if spec.startswith(("/", "./", "../", "~")) or spec.lower().endswith(_OTHER_DATA_SUFFIXES):
        return True
    return Path(spec.partition("@")[0]).expanduser().exists()


def check_names(params: TrainParams, names: dict[str, list[str]]) -> None:
    for section, given in (("sft", params.sft), ("lora", params.lora)):
        unknown = sorted(set(given) - set(names[section]))
        if unknown:
            owner = "TRL's SFTConfig" if section == "sft" else "PEFT's LoraConfig"
            raise RecipeError(
                f"stages.train.{section}.{unknown[0]}: unknown option ({owner} has none)"
            )


def option_names(required: bool = True) -> dict[str, list[str]] | None:
    """{"sft": SFTConfig's fields, "lora": LoraConfig's} of the installed trl, transformers and
    peft; None when one is not installed (unless `required`: then the ImportError)."""
    try:
        versions = "-".join(metadata.version(p) for p in ("trl", "transformers", "peft"))
    except metadata.PackageNotFoundError:
        if required:
            raise ImportError("trl, transformers and peft are needed", name="trl") from None
        return None
    cache = _cache_dir() / f"option-names-{versions}.json"
    try:
        return json.loads(cache.read_text())
    except (OSError, ValueError):
        pass
    import dataclasses

    from peft import LoraConfig
    from trl import SFTConfig

    names = {
        "sft": sorted(f.name for f in dataclasses.fields(SFTConfig) if f.init),
        "lora": sorted(f.name for f in dataclasses.fields(LoraConfig) if f.init),
    }
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}")
        tmp.write_text(json.dumps(names))
        os.replace(tmp, cache)
    except OSError as err:  # a read-only home: checked again next time
        log.debug("cannot cache option names in %s: %s", cache, err)
    return names


def _cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(root).expanduser() / "code-instruct-builder"
