"""The Evaluation tab's content: pass@1 of every evaluated revision, per benchmark, over training
steps, beside published reference scores, and each task's generated code and verdict.

An evaluation is a commit of an evaluation repository (`kind: evaluation` in its manifest).
Its model is named by the manifest (`model`, `model_revision`); a revision of one of the
recipe's model repositories is placed at the training step its branch names (`step-000500` ->
500, a branch whose name ends in a number), or else the step its model manifest records
(`global_step`), the recipe's base model at step 0. Two evaluations
of the same model revision are merged, the newer one's score winning per benchmark.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from builder.evaluation.eval_card import config_name
from space_app import safe_html as h
from space_app.catalog import Catalog

# Table column -> (benchmark, score key): EvalPlus's "base" is HumanEval / MBPP, "plus" the
# `+` variant (base and extra tests); DS-1000 and LiveCodeBench have one overall score.
COLUMNS = {
    "HumanEval": ("humaneval+", "base"),
    "HumanEval+": ("humaneval+", "plus"),
    "MBPP": ("mbpp+", "base"),
    "MBPP+": ("mbpp+", "plus"),
    "LiveCodeBench": ("livecodebench", "score"),
    "DS-1000": ("ds-1000", "score"),
}
TABLE_HEADERS = ["model", "step", *COLUMNS, "evaluated", "results"]
REFERENCES = Path(__file__).with_name("references.yaml")
_STEP = re.compile(r"(\d+)$")


@dataclass
class Evaluation:
    model: str
    model_revision: str | None
    label: str = ""
    step: int | None = None
    scores: dict[str, float] = field(default_factory=dict)  # column -> pass@1 in percent
    created_at: str = ""
    results: list[tuple[str, str]] = field(default_factory=list)  # (repo, commit) merged in


def collect(catalog: Catalog) -> list[Evaluation]:
    """Every evaluated model revision, in the order first evaluated."""
    merged: dict[tuple[str, str | None], Evaluation] = {}
    for repo in catalog.config.eval_repos:
        for commit in reversed(catalog.revisions(repo)):  # oldest first: newer scores win
            manifest = catalog.manifest(repo, commit.id)
            if not manifest or manifest.get("kind") != "evaluation":
                continue
            key = (manifest["model"], manifest.get("model_revision"))
            entry = merged.setdefault(key, Evaluation(*key))
            entry.scores.update(_scores(manifest.get("benchmarks", {})))
            entry.created_at = max(entry.created_at, manifest.get("created_at", ""))
            entry.results.append((repo, commit.id))
    entries = list(merged.values())
    _place(catalog, entries)
    return entries


def _scores(benchmarks: dict) -> dict[str, float]:
    scores = {}
    for column, (benchmark, key) in COLUMNS.items():
        value = (benchmarks.get(benchmark, {}).get("scores", {}).get(key) or {}).get("pass@1")
        if value is not None:
            scores[column] = round(100 * value, 1)
    return scores


def _place(catalog: Catalog, entries: list[Evaluation]) -> None:
    """Label each evaluation, and give a training step to checkpoints and the base model."""
    config = catalog.config
    branches = {repo: catalog.branches(repo) for repo in config.model_repos}
    for entry in entries:
        revision = entry.model_revision or ""
        if entry.model in branches:
            names = sorted(b for b, c in branches[entry.model].items() if c == revision)
            steps = [int(m.group(1)) for b in names if (m := _STEP.search(b))]
            entry.step = max(steps) if steps else _manifest_step(catalog, entry)
            entry.label = f"{entry.model}@{'/'.join(names) or revision[:12]}"
        elif entry.model == config.base_model:
            entry.step, entry.label = 0, f"base: {entry.model}"
        else:
            entry.label = f"{entry.model}@{revision[:12]}"


def _manifest_step(catalog: Catalog, entry: Evaluation) -> int | None:
    """A model revision whose branch names no step (e.g. the final model on main): the training
    step its manifest records (`global_step` or `step`), if it records one."""
    if not entry.model_revision:
        return None
    manifest = catalog.manifest(entry.model, entry.model_revision, "model") or {}
    step = manifest.get("global_step", manifest.get("step"))
    return step if isinstance(step, int) else None


@functools.cache
def references() -> list[dict]:
    return yaml.safe_load(REFERENCES.read_text())


def score_table(entries: list[Evaluation]) -> list[list]:
    """TABLE_HEADERS rows: ours by step (then the others), then the published references."""
    ordered = sorted(entries, key=lambda e: (e.step is None, e.step or 0, e.created_at))
    rows = [
        [
            e.label,
            e.step,
            *(e.scores.get(c) for c in COLUMNS),
            e.created_at,
            ", ".join(f"{r}@{c[:12]}" for r, c in e.results),
        ]
        for e in ordered
    ]
    for ref in references():
        rows.append(
            [ref["model"], None, *(ref["scores"].get(c) for c in COLUMNS), "", ref["source"]]
        )
    return rows


def plot_points(entries: list[Evaluation]) -> list[dict]:
    """{"step", "pass@1", "benchmark"} for every evaluation placed at a training step."""
    return [
        {"step": e.step, "pass@1": value, "benchmark": column}
        for e in sorted((e for e in entries if e.step is not None), key=lambda e: e.step)
        for column, value in e.scores.items()
    ]


def result_choices(catalog: Catalog, entries: list[Evaluation]) -> list[tuple[str, str]]:
    """(label, "repo@commit") of every published evaluation, for the drill-down."""
    return [
        (f"{e.label} · {repo}@{commit[:12]}", f"{repo}@{commit}")
        for e in entries
        for repo, commit in reversed(e.results)
    ]


def benchmark_configs(catalog: Catalog, result: str) -> list[str]:
    repo, _, commit = result.partition("@")
    manifest = catalog.manifest(repo, commit) or {}
    return list(manifest.get("splits", {})) or [
        config_name(b) for b in manifest.get("benchmarks", {})
    ]


SAMPLE_HEADERS = ["#", "task_id", "sample", "verdict"]


def samples(catalog: Catalog, result: str, config: str, limit: int = 5000) -> list[list]:
    repo, _, commit = result.partition("@")
    pages = catalog.split(repo, commit, config)
    return [
        [i, r.get("task_id"), r.get("sample_index"), verdict(r)] for i, r in pages.rows(0, limit)
    ]


def verdict(row: dict) -> str:
    if "pass_plus" in row:  # EvalPlus: base tests, then the extra ones (not run after a fail)
        return f"base {row.get('base_status')}, plus {row.get('plus_status') or 'not run'}"
    return "pass" if row.get("passed") else f"fail ({row.get('status') or 'tests failed'})"


def sample_html(catalog: Catalog, result: str, config: str, index: int) -> str:
    """One graded sample as HTML, every value of the row escaped (see safe_html.py)."""
    repo, _, commit = result.partition("@")
    row = catalog.split(repo, commit, config).row(int(index))
    code = row.get("solution") or row.get("code") or row.get("completion") or ""
    title = f"{row.get('task_id')} · sample {row.get('sample_index')}: {verdict(row)}"
    items = [
        h.item(key.replace("_", " "), h.code(str(row[key])[:300]))
        for key in ("base_failed_input", "plus_failed_input", "grading_error", "error")
        if row.get(key)
    ]
    if row.get("finish_reason"):
        items.append(h.item("generation ended by", h.text(row["finish_reason"])))
    out = [f"<h3>{h.text(title)}</h3>", "<ul>" + "".join(items) + "</ul>" if items else ""]
    out.append(h.block(code, "Generated code, as graded"))
    if row.get("prompt"):
        out.append(f"<details><summary>Prompt</summary>{h.block(row['prompt'])}</details>")
    return "\n".join(out)
