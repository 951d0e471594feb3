"""A recipe's steps, in order: run them, or report what each has published."""

from __future__ import annotations

import logging
import time
from collections import Counter

from builder.errors import BuilderError, StageError
from builder.pipeline.plan_report import compare_estimate, compare_total, estimate_run
from builder.pipeline.publish import manifest_kind, read_manifest
from builder.pipeline.recipe import Recipe
from builder.pipeline.repo_names import repo_for
from builder.pipeline.step import KINDS
from builder.pipeline.step_runner import plan_step, run_step
from builder.registry import EXECUTORS, STEPS
from builder.store import Store, open_store

log = logging.getLogger(__name__)


def select_stages(recipe: Recipe, only: list[str] | None) -> list[str]:
    """The steps to run, in recipe order; every name is checked before anything runs."""
    names = recipe.stage_names()
    for name in only or []:
        if name not in names:
            raise StageError(
                f"unknown stage '{name}' (recipe {recipe.path} has: {', '.join(names) or 'none'})"
            )
    if only is None:  # the whole recipe: what this version implements, and what that feeds
        skipped: list[str] = []
        for name in names:
            upstream = (recipe.input_stage(name) or "").partition("@")[0]
            if not STEPS.load(name).implemented or upstream in skipped:
                skipped.append(name)
        if skipped:
            log.warning("skipping stages not implemented yet or fed by one: %s", ", ".join(skipped))
        return [n for n in names if n not in skipped]
    selected = [n for n in names if n in only]
    for name in selected:
        if not STEPS.load(name).implemented:
            raise StageError(f"stage '{name}' is not implemented yet; run the others with --only")
    return selected


def run_recipe(recipe: Recipe, only: list[str] | None = None) -> dict[str, str]:
    """Run the selected steps in order, on the recipe's executor; returns step -> revision."""
    selected = select_stages(recipe, only)
    store = open_store(recipe.hub.store)
    revisions = {}
    estimates = estimate_run(recipe, selected)
    started = time.monotonic()
    with EXECUTORS.create(recipe.executor.backend, recipe.executor) as executor:
        for name in selected:
            plan = plan_step(recipe, name, store)
            revisions[name] = run_step(plan, recipe, executor)
            if name in estimates:
                compare_estimate(estimates[name], read_manifest(plan.store, plan.repo,
                                                                revisions[name]))  # fmt: skip
            check_kept(recipe, plan, revisions[name])
    compare_total(list(estimates.values()), time.monotonic() - started)
    return revisions


def check_kept(recipe: Recipe, plan, revision: str) -> None:
    """Stop the run when a step whose input had rows kept none (its output is published, with
    every dropped row and its reason, so that it can be read); warn when it kept less than the
    recipe's `keep_warning` share of its rows out. Up-to-date steps are checked too: a rerun
    stops at the same place."""
    manifest = read_manifest(plan.store, plan.repo, revision)
    if not manifest or manifest.get("rows_in") is None:
        return  # a model or an evaluation: no rows
    rows_in, kept = manifest["rows_in"], manifest.get("rows_out") or 0
    drops = manifest.get("drops") or {}
    dropped = sum(drops.values())
    top = ", ".join(f"{reason}: {n}" for reason, n in Counter(drops).most_common(3)) or "none"
    if rows_in and not kept:
        where = f"{plan.repo}@{revision[:12]}; dropped by reason: {top}"
        if recipe.stop_when_empty:
            raise StageError(
                f"{plan.name} kept none of its {rows_in} rows ({where}); the steps after it "
                "were not run"
            )
        log.warning("%s kept none of its %d rows (%s); going on (stop_when_empty: false)",
                    plan.name, rows_in, where)  # fmt: skip
        return
    if dropped and kept / (kept + dropped) < recipe.keep_warning:
        log.warning(
            "%s kept %d of %d rows (%.1f%%, below keep_warning %.1f%%); dropped by reason: %s",
            plan.name, kept, kept + dropped, 100 * kept / (kept + dropped),
            100 * recipe.keep_warning, top,
        )  # fmt: skip


def recipe_status(recipe: Recipe) -> list[dict]:
    """One entry per step, in recipe order."""
    store = open_store(recipe.hub.store)
    return [_step_status(recipe, name, store) for name in recipe.stage_names()]


def _step_status(recipe: Recipe, name: str, store: Store) -> dict:
    cls = STEPS.load(name)
    repo = repo_for(recipe, name, store)
    entry = {
        "stage": name,
        "kind": cls.kind,
        "repo": repo,
        "revision": None,
        "rows": None,
        "published": None,
        "input": None,
        "current": False,
    }
    repos = open_store(store.uri, KINDS[cls.kind])
    if not repos.repo_exists(repo):
        return entry
    head = repos.resolve(repo)
    manifest = read_manifest(repos, repo, head)
    if manifest is None:
        return {**entry, "revision": head}
    source = manifest.get("input") or {}
    entry.update(
        kind=manifest_kind(manifest),
        revision=head,
        rows=manifest.get("rows_out"),
        published=manifest["created_at"],
        input=f"{source.get('repo') or source.get('path')}@{source.get('revision')}"
        if source
        else None,
    )
    if not cls.implemented:
        return entry
    try:
        entry["current"] = plan_step(recipe, name, store).current
    except BuilderError as err:  # e.g. its input is gone or unreachable: not current
        log.debug("%s: cannot tell whether current: %s", name, err)
    return entry
