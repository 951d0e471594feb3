"""The end of a training run: the final model written for the publisher, and the run's last
checkpoint taken as that end when a rerun finds training already finished."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def load_finished(trainer, checkpoint: Path) -> None:
    """The run's last checkpoint, loaded as the final state: the Trainer, resumed there, would
    still train one step past `max_steps` (it checks the end only after a step)."""
    from transformers import TrainerState

    log.info("train: %s is the last step: loading it, nothing left to train", checkpoint.name)
    trainer._load_from_checkpoint(str(checkpoint))
    trainer.state = TrainerState.load_from_json(str(checkpoint / "trainer_state.json"))


def save_final(trainer, tokenizer, folder: Path, merged: bool) -> dict[str, str]:
    """The final model as users load it; returns what is where (for the card)."""
    if hasattr(trainer.model, "peft_config"):  # a PeftModel
        if merged:
            trainer.model.save_pretrained(folder / "adapter")
            tokenizer.save_pretrained(folder / "adapter")
            trainer.model.merge_and_unload().save_pretrained(folder)
            tokenizer.save_pretrained(folder)
            return {"model": "merged", "adapter": "adapter/"}
        trainer.save_model(str(folder))
        (folder / "training_args.bin").unlink(missing_ok=True)
        return {"adapter": "."}
    trainer.save_model(str(folder))
    (folder / "training_args.bin").unlink(missing_ok=True)  # the card and manifest have them
    return {"model": "."}
