"""Sampling parameters shared by every stage that prompts the model."""

from __future__ import annotations

from dataclasses import dataclass

from builder.config.fields import bounded
from builder.pipeline.step import StepParams


@dataclass
class GenerationParams(StepParams):
    """Sampling keys shared by every stage that prompts the model.

    All of them change the completions, so all are in the fingerprint and in the cache key.
    `seed` is the stage's base seed: each row derives its own seed (and its few-shot draw) from
    it and the row's id, so a row's prompt and samples do not depend on its place in the input.
    """

    n: int = bounded(1, ge=1)  # samples per prompt
    temperature: float = bounded(0.0, ge=0)  # 0: greedy
    top_p: float = bounded(1.0, gt=0, le=1)
    max_tokens: int = bounded(512, ge=1)
    num_fewshots: int = bounded(8, ge=0)  # worked examples in each prompt, drawn per row
    seed: int = bounded(3407, ge=0)  # the published run's seed
