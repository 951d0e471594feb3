"""The `eval` step's baseline: the base model scored beside the trained one, and the paired
difference per benchmark (`compare.py`), in the evaluation's manifest and card and in the
evaluated model's card (a section between markers, replaced on every evaluation)."""

from __future__ import annotations

from collections.abc import Callable

from builder.evaluation.compare import comparison_lines, paired_difference, per_task_pass

_START = "<!-- code-instruct-builder: before-after -->"
_END = "<!-- /code-instruct-builder: before-after -->"


def baseline_facts(model, before: list, after: list) -> dict:
    """The manifest's `baseline`: the model, its scores, and per benchmark the difference."""
    by_name = {r.benchmark: r for r in before}
    comparison = {}
    for result in after:
        base = by_name.get(result.benchmark)
        if base is None:
            continue
        key = "plus" if "plus" in result.scores() else "base"
        comparison[result.benchmark] = {
            "score": key,
            **paired_difference(per_task_pass(result, key), per_task_pass(base, key)),
        }
    return {
        "model": model.name,
        "model_revision": model.revision,
        "gguf": getattr(model, "source", None),
        "benchmarks": {r.benchmark: {"tasks": r.tasks, "scores": r.scores()} for r in before},
        "comparison": comparison,
    }


def baseline_section(manifest: dict) -> str:
    baseline = manifest["baseline"]
    lines = ["## Before and after training", ""]
    lines += comparison_lines(
        f"{baseline['model']}@{baseline['model_revision']}",
        f"{manifest['model']}@{manifest['model_revision']}",
        baseline["comparison"],
    )
    lines += ["", "The baseline's samples are the `baseline_*` configs of the evaluation dataset."]
    return "\n".join(lines)


def with_baseline_section(transform: Callable[[str], str], manifest: dict):
    """`transform`, then the before/after section put in the card (replacing an earlier one)."""
    section = f"{_START}\n{baseline_section(manifest)}\n{_END}"

    def apply(card: str) -> str:
        card = transform(card)
        start, end = card.find(_START), card.find(_END)
        if start >= 0 and end > start:
            return card[:start] + section + card[end + len(_END) :]
        return card.rstrip("\n") + "\n\n" + section + "\n"

    return apply
