"""Two models on the same tasks: the difference of their scores, with a paired interval.

Each task gives each model a pass rate (greedy: 0 or 1). The difference of the means is the
difference of pass@1; its 95% interval comes from a paired bootstrap over tasks (tasks drawn with
replacement, the same draw for both models, 10,000 draws, a fixed seed), and for one sample per
task McNemar's exact test gives a p-value from the tasks only one model passes. A difference
whose interval contains 0 is reported as no difference: with a few hundred tasks, a point or two
either way is noise.

Limit: tasks are taken as independent draws from the benchmark's population, which they are
not quite (HumanEval's tasks were written by a few people); the interval is the usual one.
"""

from __future__ import annotations

import math
from collections import defaultdict

DRAWS = 10_000
SEED = 0


def per_task_pass(result, key: str = "plus") -> dict[str, float]:
    """task_id -> share of its samples that pass (`plus`: base and plus tests; `base`)."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for verdict in result.verdicts:
        entry = counts[verdict.sample.task_id]
        entry[0] += 1
        entry[1] += verdict.plus_pass if key == "plus" else verdict.base_pass
    return {task: passed / n for task, (n, passed) in counts.items()}


def paired_difference(after: dict[str, float], before: dict[str, float]) -> dict:
    """after - before over the tasks both have: mean, 95% bootstrap interval, McNemar."""
    tasks = sorted(set(after) & set(before))
    if not tasks:
        return {"tasks": 0}
    import numpy as np

    diffs = np.array([after[t] - before[t] for t in tasks], dtype=float)
    n = len(diffs)
    draws = np.random.default_rng(SEED).integers(0, n, size=(DRAWS, n))
    means = diffs[draws].mean(axis=1)
    low, high = (float(x) for x in np.percentile(means, [2.5, 97.5]))
    mean = float(diffs.mean())
    only_after = sum(1 for t in tasks if after[t] > before[t])
    only_before = sum(1 for t in tasks if after[t] < before[t])
    return {
        "tasks": n,
        "before": sum(before[t] for t in tasks) / n,
        "after": sum(after[t] for t in tasks) / n,
        "difference": mean,
        "ci95": [low, high],
        "only_after": only_after,
        "only_before": only_before,
        "mcnemar_p": mcnemar_exact(only_after, only_before),
        "verdict": verdict(low, high),
    }


def verdict(low: float, high: float) -> str:
    if low > 0:
        return "better"
    if high < 0:
        return "worse"
    return "no difference"


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: binomial(b + c, 1/2) on the discordant tasks."""
    total = b + c
    if total == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(total, i) for i in range(k + 1)) / 2**total
    return min(1.0, 2 * tail)


def comparison_lines(before_name: str, after_name: str, comparison: dict[str, dict]) -> list[str]:
    """A Markdown table of the comparison, one row per benchmark."""
    lines = [
        f"Before: `{before_name}`; after: `{after_name}`. pass@1 on the tasks both were "
        "scored on (plus tests where the benchmark has them), the difference with its 95% "
        "paired bootstrap interval, and McNemar's exact p-value on the tasks only one passes. "
        "An interval that contains 0 is no difference.",
        "",
        "| benchmark | tasks | before | after | difference (95% CI) | only before / only after "
        "| p | verdict |",
        "| --- | ---: | ---: | ---: | --- | --- | ---: | --- |",
    ]
    for benchmark, c in comparison.items():
        if not c.get("tasks"):
            continue
        low, high = c["ci95"]
        lines.append(
            f"| {benchmark} | {c['tasks']} | {100 * c['before']:.1f} | {100 * c['after']:.1f} "
            f"| {100 * c['difference']:+.1f} ({100 * low:+.1f} to {100 * high:+.1f}) "
            f"| {c['only_before']} / {c['only_after']} | {c['mcnemar_p']:.2f} | {c['verdict']} |"
        )
    return lines
