"""Sampling parameters shared by every stage that prompts the model."""

from __future__ import annotations

from dataclasses import dataclass

from builder.pipeline.step import StepParams


@dataclass
class GenerationParams(StepParams):
    """Sampling keys shared by every stage that prompts the model.

    All of them change the completions, so all are in the fingerprint and in the cache key.
    `seed` is the stage's base seed: each row derives its own seed (and its few-shot draw) from
    it and the row's id, so a row's prompt and samples do not depend on its place in the input.
    """

    n: int = 1  # samples per prompt
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    max_tokens: int = 512
    num_fewshots: int = 8  # worked examples in each prompt, drawn per row
    seed: int = 3407  # the published run's seed
