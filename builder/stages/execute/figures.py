"""What execution says about the data, as figures for the manifests, the cards and the Space:

- `execute`: how hard the tasks were (the distribution of `task_pass_rate`, one value per task);
- `mutate`: how strong the passing samples' tests are (the distribution of `test_strength`),
  and a weak and a strong test block quoted from the data;
- `select`: how many SFT pairs each selection policy and threshold would give from the same
  candidates (`PolicyCounts`), so that a user sees what a choice costs before making it.

Ranges are half-open bins with the two ends on their own: exactly 0, (0, 0.25), [0.25, 0.5),
[0.5, 0.75), [0.75, 1), exactly 1.
"""

from __future__ import annotations

import hashlib
from collections import Counter

BINS = ("0", "(0, 0.25)", "[0.25, 0.5)", "[0.5, 0.75)", "[0.75, 1)", "1")
THRESHOLDS = (0.25, 0.5, 0.75, 1.0)


def bin_of(value: float) -> str:
    if value <= 0:
        return BINS[0]
    if value >= 1:
        return BINS[-1]
    return BINS[1 + min(3, int(value * 4))]


def distribution(title: str, unit: str, values: list[float], note: str = "") -> dict:
    counts = Counter(bin_of(v) for v in values)
    total = max(1, len(values))
    rows = [[b, counts[b], round(counts[b] / total, 3)] for b in BINS]
    mean = f"{sum(values) / len(values):.3f}" if values else "none"
    return {"title": title, "headers": ["range", unit, "share"], "rows": rows,
            "note": f"{len(values):,} {unit}, mean {mean}. {note}".strip()}  # fmt: skip


def pass_rate_figure(rates: dict) -> dict:
    """One pass rate per task (`TaskTally`)."""
    return distribution(
        "Task pass rates", "tasks", list(rates.values()),
        "A task's pass rate is the share of its samples that passed their own tests.",
    )  # fmt: skip


class StrengthFigures:
    """Strengths of the measured samples, and the weakest and strongest test blocks."""

    def __init__(self):
        self.strengths: list[float] = []
        self.weak: tuple | None = None  # (rank, example): strength 0, the most asserts
        self.strong: tuple | None = None  # the highest strength above 0, then most mutants

    def add(self, row: dict) -> None:
        strength = row.get("test_strength")
        if strength is None:
            return
        self.strengths.append(strength)
        tie = hashlib.sha256(str(row.get("response")).encode()).hexdigest()
        if strength == 0:
            rank = (-(row.get("exec_asserts") or 0), tie)
            if self.weak is None or rank < self.weak[0]:
                self.weak = (rank, _example(row))
        rank = (-strength, -row["test_mutants"], tie)
        if strength > 0 and (self.strong is None or rank < self.strong[0]):
            self.strong = (rank, _example(row))

    def figures(self) -> list[dict]:
        figures = [distribution(
            "Test strength (mutants caught)", "samples", self.strengths,
            "Of the samples that passed, the share of small breaks of their code that their own "
            "tests caught.",
        )]  # fmt: skip
        for label, example in (("A weak", self.weak), ("A strong", self.strong)):
            if example is not None:
                figures.append({"title": f"{label} test block", **example[1]})
        return figures


def _example(row: dict) -> dict:
    """A sample's strength, instruction, implementation and tests, as a figure's blocks (model
    text only ever inside blocks: cards fence it, the Space escapes it)."""
    from builder.stages.generation.parse import parse_response

    parsed = parse_response(row["response"], untagged=row.get("response_format") == "untagged")
    missed = ", ".join(row.get("test_survivors") or []) or "none"
    caption = (
        f"Strength {row['test_strength']:.2f}: its tests caught {row['test_mutants_killed']} "
        f"of {row['test_mutants']} mutants (missed: {missed}); {row.get('exec_asserts', 0)} "
        "asserts."
    )
    blocks = [{"label": "instruction", "language": "text", "text": _short(row.get("instruction"))}]
    if parsed.ok:
        blocks += [
            {"label": "implementation", "language": "python",
             "text": _lines(parsed.value.implementation)},
            {"label": "tests", "language": "python", "text": _lines(parsed.value.tests)},
        ]  # fmt: skip
    return {"caption": caption, "blocks": blocks}


def _short(text, limit: int = 300) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _lines(code: str, limit: int = 25) -> str:
    lines = code.splitlines()
    more = [f"# ... {len(lines) - limit} more lines"] if len(lines) > limit else []
    return "\n".join(lines[:limit] + more)


class PolicyCounts:
    """The pairs each policy would keep from the candidates that reached `select`'s choice
    (well-formed, passing, distinct, past this revision's own thresholds if it set any): one per
    task (`random_one`, `strongest_tests`), every one (`all_passing`), and each under a minimum
    test strength or task pass rate."""

    def __init__(self):
        self.candidates = 0
        self.tasks: dict[str, tuple[float, float]] = {}  # task -> (best strength, pass rate)
        self.by_strength: Counter = Counter()  # threshold -> candidates at or above it
        self.by_rate: Counter = Counter()

    def add(self, task: str, strength: float | None, rate: float | None) -> None:
        self.candidates += 1
        strength_value = -1.0 if strength is None else strength
        rate_value = -1.0 if rate is None else rate
        best = self.tasks.get(task, (-1.0, rate_value))
        self.tasks[task] = (max(best[0], strength_value), rate_value)
        for t in THRESHOLDS:
            self.by_strength[t] += strength_value >= t
            self.by_rate[t] += rate_value >= t

    def figure(self, policy: str) -> dict:
        one_per_task = len(self.tasks)
        rows = [["none (the policies)", one_per_task, self.candidates]]
        for t in THRESHOLDS:
            tasks = sum(best >= t for best, _ in self.tasks.values())
            rows.append([f"min_test_strength {t:g}", tasks, self.by_strength[t]])
        for t in THRESHOLDS:
            tasks = sum(rate >= t for _, rate in self.tasks.values())
            rows.append([f"min_task_pass_rate {t:g}", tasks, self.by_rate[t]])
        return {
            "title": "SFT pairs by selection policy",
            "headers": ["threshold", "random_one / strongest_tests", "all_passing"],
            "rows": rows,
            "note": (
                f"This revision used `{policy}`. Counted over the well-formed, passing, distinct "
                "candidates that reached the choice (after this revision's own thresholds). An "
                "unmeasured strength or pass rate counts as below every threshold."
            ),
        }
