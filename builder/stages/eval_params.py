"""The `eval` step's settings, apart from the step, so that `builder eval` derives its flags
from them without importing the graders."""

from __future__ import annotations

from dataclasses import dataclass, field

from builder.config.fields import bounded, runtime_only
from builder.pipeline.step import StepParams

DEFAULT_CACHE = "~/.cache/code-instruct-builder/eval"


@dataclass
class EvalParams(StepParams):
    model: str | None = None  # a Hub id or a folder; None: the input step's model, or the recipe's
    revision: str | None = None
    benchmarks: list[str] = field(default_factory=lambda: ["humaneval+", "mbpp+"])
    # benchmark -> its release file (DS-1000 and LiveCodeBench need one; EvalPlus's are shipped)
    data_files: dict[str, str] = field(default_factory=dict)
    lcb_release: str | None = None  # LiveCodeBench: release_v1 .. release_v6
    start_date: str | None = None  # LiveCodeBench: first contest date, YYYY-MM-DD
    end_date: str | None = None
    n_samples: int = bounded(1, ge=1)  # per task, for pass@k
    temperature: float = bounded(0.0, ge=0)
    top_p: float = bounded(1.0, gt=0, le=1)
    max_tokens: int = bounded(512, ge=1)
    seed: int = bounded(0, ge=0)
    # builder/evaluation/prompts/instruct.yaml, or `chat` (the model's own chat template);
    # None: `chat` under the recipe's `prompting: chat`, else `sc2-instruct`
    template: str | None = None
    # Grading: EvalPlus's options, with its defaults.
    test_details: bool = False
    min_time_limit: float = bounded(1.0, gt=0)
    gt_time_limit_factor: float = bounded(4.0, gt=0)
    base_only: bool = False
    run_plus_after_base_fail: bool = runtime_only(False)  # scores unchanged
    fix_find_zero: bool = False
    sandbox: str | None = None  # None: the recipe's sandbox.backend
    engine: str | None = runtime_only(None)  # None: the recipe's engine.backend
    batch_size: int = runtime_only(8, ge=1)
    workers: int | None = runtime_only(None, ge=1)
    cache_dir: str = runtime_only(DEFAULT_CACHE)
    repo: str | None = runtime_only(None)  # None: <namespace>/<recipe>-eval
    # A model repository of the store: also every checkpoint branch (step-NNNNNN) of it.
    checkpoints: bool = False
    # Also the recipe's `model` (the base model a `train` step fine-tuned), with the same
    # settings: its samples under `baseline/`, and the paired difference per benchmark, with a
    # 95% interval, in this card and in the evaluated model's card.
    baseline: bool = False
