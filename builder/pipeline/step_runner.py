"""The step runner: with the publisher, the only code that talks to the store.

For each step it pins the input revision, checks the step's declared columns against the
input, and computes a fingerprint (step, version, parameters, extra settings, input revision).
If the published head already has that fingerprint, nothing runs. Otherwise the step runs into
a work folder named by the fingerprint (row stages checkpoint their chunks there, see
`rows.py`), and its output, card and manifest are published as one commit whose parent is
the head the step started from.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from builder.errors import StageError
from builder.pipeline.checkpoint import Checkpoint
from builder.pipeline.executors.local import LocalExecutor
from builder.pipeline.input_opener import Inputs
from builder.pipeline.input_sources import InputSource
from builder.pipeline.measured import measured
from builder.pipeline.publish import MANIFEST_FORMAT, publish, read_manifest, update_card
from builder.pipeline.recipe import Recipe
from builder.pipeline.repo_names import repo_for, step_context, work_root
from builder.pipeline.step import KINDS, Step, StepRun
from builder.pipeline.versions import software_versions
from builder.pipeline.work_dir import check_work_dir, work_dir_errors
from builder.registry import STEPS
from builder.store import Store, open_store

log = logging.getLogger(__name__)


@dataclass
class StepPlan:
    name: str
    step: Step
    repo: str
    store: Store  # the store of the step's repository type (datasets or models)
    source: InputSource | None
    fingerprint: str
    head: str | None  # the repo's current main, None if the repo does not exist yet
    manifest: dict | None  # the head's manifest

    @property
    def current(self) -> bool:
        return self.manifest is not None and self.manifest["fingerprint"] == self.fingerprint


def plan_step(recipe: Recipe, name: str, store: Store) -> StepPlan:
    """Everything decided before work starts; raises StageError on a bad input."""
    step = STEPS.load(name)(recipe.stages[name], step_context(recipe, store))
    return plan(step, repo_for(recipe, name, store), Inputs(recipe, name, store))


def plan(step: Step, repo: str, inputs: Inputs) -> StepPlan:
    """Pin `step`'s input and compare its fingerprint with what `repo` holds."""
    source = step.open_input(inputs)
    missing = [c for c in step.reads if c not in source.columns] if source else []
    if missing and source.num_rows != 0:  # an empty input has no columns: nothing to check
        raise StageError(
            f"stage '{step.name}' reads column '{missing[0]}', which {source.describe()} does "
            f"not have (it has: {', '.join(source.columns) or 'no columns'})"
        )
    fingerprint = _fingerprint(step, source)
    store = open_store(inputs.store.uri, KINDS[step.kind])
    head = store.resolve(repo) if store.repo_exists(repo) else None
    manifest = read_manifest(store, repo, head) if head else None
    return StepPlan(step.name, step, repo, store, source, fingerprint, head, manifest)


def _fingerprint(step: Step, source: InputSource | None) -> str:
    identity = {
        "stage": step.name,
        "version": step.version,
        "params": step.params.fingerprint_items(),
        "extra": step.fingerprint_extra(),
        "input": source.ref if source is not None else None,
    }
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_step(plan: StepPlan, recipe: Recipe, executor=None) -> str:
    """Run one planned step; returns the revision that is current afterwards."""
    work_dir = work_root(recipe)
    check_work_dir(work_dir)
    with work_dir_errors(work_dir):
        return _run_step(plan, recipe, executor, work_dir)


def _run_step(plan: StepPlan, recipe: Recipe, executor, work_dir: Path) -> str:
    chunk_size = plan.step.chunk_size
    # Chunk boundaries are part of the folder's name: chunks cut differently never mix.
    folder_name = plan.fingerprint + (f"-c{chunk_size}" if chunk_size else "")
    checkpoint = Checkpoint(work_dir / plan.repo.replace("/", "--") / folder_name)
    with checkpoint.locked():
        if plan.current:
            log.info("%s: up to date, %s@%s is current", plan.name, plan.repo, plan.head)
            checkpoint.remove()  # left over if a run died after publishing
            return plan.head
        own_executor = executor is None
        if own_executor:
            executor = LocalExecutor()
        try:
            revision = _run_and_publish(plan, recipe, checkpoint, executor)
        finally:
            if own_executor:
                executor.close()
        checkpoint.remove()
        return revision


def _run_and_publish(plan: StepPlan, recipe: Recipe, checkpoint, executor) -> str:
    step = plan.step
    started = time.monotonic()
    log.info("%s: reading %s, fingerprint %s", plan.name, _describe(plan.source), plan.fingerprint)
    output = checkpoint.publish_folder()
    revisions = BranchRevisions(plan, recipe)
    job = StepRun(plan.source, output, checkpoint.folder, executor, revisions=revisions)
    facts = step.run(job)
    manifest = _manifest(plan, recipe, facts)
    manifest.setdefault("timings", {"run_s": round(time.monotonic() - started, 2)})
    if manifest.get("rows_in") is not None or manifest.get("training"):  # for `builder plan`
        manifest["measured"] = measured(manifest, recipe.engine.backend)
    title = step.commit_title(manifest, _describe(plan.source))
    revision = publish(
        plan.store, plan.repo, output, manifest, step.card(manifest), title,
        _commit_description(plan, recipe), parent=plan.head, private=recipe.hub.private,
    )  # fmt: skip
    log.info("%s: published %s@%s (%s)", plan.name, plan.repo, revision, step.summary(manifest))
    for update in step.card_updates(manifest):
        store = open_store(plan.store.uri, update.repo_type)
        done = update_card(store, update.repo, update.transform, update.title, update.branch)
        if done:
            log.info("%s: %s (%s@%s)", plan.name, update.title, update.repo, done)
    return revision


def _manifest(plan: StepPlan, recipe: Recipe, facts: dict) -> dict:
    step = plan.step
    return {
        "format": MANIFEST_FORMAT,
        "kind": step.kind,
        "stage": plan.name,
        "repo": plan.repo,
        "stage_version": step.version,
        "description": step.description,
        "fingerprint": plan.fingerprint,
        "settings": step.fingerprint_extra(),  # e.g. the model, the sandbox's limits
        "input": plan.source.ref if plan.source is not None else None,
        "params": step.published_params(),
        # The file's name only: where the user keeps it is nobody else's business.
        "recipe": {
            "name": recipe.name,
            "file": Path(recipe.path).name,
            "fingerprint": recipe.fingerprint(),
        },
        "versions": software_versions(),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **facts,
    }


def _commit_description(plan: StepPlan, recipe: Recipe) -> str:
    return f"fingerprint {plan.fingerprint}; recipe {recipe.name} ({Path(recipe.path).name})"


class BranchRevisions:
    """What a step that publishes while it runs (a training checkpoint) may do with its
    repository, through the publisher: publish a folder on a branch other than main, list the
    branches it published with this same fingerprint, and fetch one back (to resume from).
    Safe to call from a background thread."""

    def __init__(self, plan: StepPlan, recipe: Recipe):
        self.plan, self.recipe = plan, recipe

    def publish(self, folder: Path, branch: str, facts: dict, title: str) -> str:
        if branch == "main":
            raise StageError("a step's revisions during its run go to branches other than main")
        manifest = {**_manifest(self.plan, self.recipe, facts), "branch": branch}
        card = self.plan.step.card(manifest)
        return publish(
            self.plan.store, self.plan.repo, folder, manifest, card, title,
            _commit_description(self.plan, self.recipe), private=self.recipe.hub.private,
            branch=branch,
        )  # fmt: skip

    def published(self, prefix: str) -> dict[str, tuple[str, dict]]:
        """branch -> (commit, manifest) of the branches named `prefix...` whose head was
        published with this plan's fingerprint."""
        store, repo = self.plan.store, self.plan.repo
        if not store.repo_exists(repo):
            return {}
        found = {}
        for branch, commit in store.refs(repo).branches.items():
            if not branch.startswith(prefix):
                continue
            manifest = read_manifest(store, repo, commit)
            if manifest is not None and manifest.get("fingerprint") == self.plan.fingerprint:
                found[branch] = (commit, manifest)
        return found

    def fetch(self, commit: str) -> dict[str, Path]:
        """Local, read-only copies of every file of a revision."""
        store, repo = self.plan.store, self.plan.repo
        files = [f for f in store.list_files(repo, commit) if f != ".gitattributes"]
        return store.fetch(repo, commit, files)


def _describe(source: InputSource | None) -> str:
    return source.describe() if source is not None else "no input"
