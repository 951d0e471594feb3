"""`builder tiny-model`: a tiny model for dry runs, demos and tests.

By default the model is fitted, with the project's own `train` step, on prompt/completion pairs
in the pipeline's formats made from our few-shot library (`stages/generation/format_set.py`):
it then answers the judge, concepts, instructions and responses prompts in forms the parsers
accept, with the library's own answers, so that a run of the tiny recipe has rows in every
stage. It has learned our formats and examples, nothing else; its scores mean nothing.
`--random` skips the fitting (noise: what the parsers and counters must cope with).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

from builder.errors import BuilderError

log = logging.getLogger("builder")

# Fitting: the answers are whole tokens of the tokenizer, so the model only learns which of a
# task's answers may follow its prompt (and then the end of text): a few passes over the 128
# pairs, well under a minute on 2 cores (measured in the README).
TASK_HEADERS = ("### Answer\n", "### Concepts\n", "### Instruction\n", "### Response\n")
FIT_SFT = {
    "num_train_epochs": 10,
    "per_device_train_batch_size": 2,
    "learning_rate": 3.0e-3,
    "lr_scheduler_type": "cosine",
    "warmup_steps": 0.05,
    "max_length": 2048,
    "save_strategy": "no",
    "bf16": False,
    "gradient_checkpointing": False,
    "dataloader_pin_memory": False,
    "logging_steps": 10,
}


def register(commands) -> None:
    tiny = commands.add_parser(
        "tiny-model", help="write a tiny model that speaks the pipeline's formats (demos, tests)"
    )
    tiny.add_argument("output_dir")
    tiny.add_argument("--random", action="store_true", help="random weights, not fitted")
    tiny.add_argument("--epochs", type=int, default=FIT_SFT["num_train_epochs"])
    tiny.set_defaults(handler=cmd_tiny_model)


def cmd_tiny_model(args) -> int:
    output = Path(args.output_dir)
    try:
        if args.random:
            from builder.engines.tiny_model import build_tiny_model

            build_tiny_model(output)
            log.info("wrote a tiny random model to %s", output)
        else:
            fit_tiny_model(output, epochs=args.epochs)
            log.info("wrote a tiny model fitted on the pipeline's formats to %s", output)
    except OSError as err:
        where = err.filename or args.output_dir
        raise BuilderError(f"cannot write the tiny model to {where}: {err.strerror}") from None
    return 0


def fit_tiny_model(output: Path, epochs: int = FIT_SFT["num_train_epochs"]) -> Path:
    """Build the random model, fit it with the `train` step on the format pairs, and copy the
    trained model to `output`."""
    from builder.engines.config import EngineConfig
    from builder.engines.tiny_model import build_tiny_model
    from builder.pipeline.recipe import HubConfig, Recipe
    from builder.pipeline.step_runner import plan_step, run_step
    from builder.stages.generation.format_set import format_pairs
    from builder.stages.train.params import TrainParams
    from builder.store import open_store

    output.mkdir(parents=True, exist_ok=True)  # fails early (one line) where it cannot
    pairs = list(format_pairs())
    with tempfile.TemporaryDirectory(prefix="builder-tiny-") as tmp:
        root = Path(tmp)
        # Whole tokens: every answer, and the header that ends each task's prompt, so that the
        # last token of a prompt says which task it is.
        whole = [p["completion"] for p in pairs] + list(TASK_HEADERS)
        base = build_tiny_model(
            root / "base", vocab_size=1024, texts=[p["prompt"] for p in pairs], whole=whole
        )
        data = root / "formats.jsonl"
        data.write_text("".join(json.dumps(p) + "\n" for p in pairs))
        params = TrainParams(input=str(data), sft={**FIT_SFT, "num_train_epochs": epochs})
        recipe = Recipe(
            name="tiny-model", model=str(base), path="(builder tiny-model)",
            hub=HubConfig(store=f"local:{root / 'store'}", namespace="local"),
            engine=EngineConfig(cpu_threads=1), work_dir=str(root / "work"),
            stages={"train": params},
        )  # fmt: skip
        store = open_store(recipe.hub.store)
        plan = plan_step(recipe, "train", store)
        revision = run_step(plan, recipe)
        models = open_store(recipe.hub.store, "model")
        files = [f for f in models.list_files(plan.repo, revision) if f != ".gitattributes"]
        for name, local in models.fetch(plan.repo, revision, files).items():
            target = output / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(local, target)
    return output

