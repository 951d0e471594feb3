"""`eval`: a model generates for HumanEval+, MBPP+, DS-1000 or LiveCodeBench, its samples are
graded in the sandbox with EvalPlus's verdicts, and the results are published as a dataset
(one config per benchmark: every sample, its code and verdicts) whose card has the scores.

The model is the step's `model` key, else the output of the step named in `input` (a model
repository of the recipe's store, e.g. the `train` step's), else the recipe's `model`; it is
pinned to a revision before any work. When the model is a repository of the store, its card's
`model-index` gets the scores. `builder eval --model` is a front end to this step.

A model repository of the store is evaluated at any revision (`input: train@step-000500`,
`builder eval --model REPO@step-000500`): the scores go into that branch's card. With
`checkpoints: true`, every checkpoint branch (`step-NNNNNN`) of the model is evaluated too, in
the same run: their samples under `checkpoints/<branch>/`, their scores in a table of the card
and in each checkpoint's own card.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from importlib import metadata
from pathlib import Path
from typing import Any

from builder.errors import StageError
from builder.evaluation.baseline import (
    baseline_facts,
    baseline_section,
    with_baseline_section,
)
from builder.evaluation.benchmarks import GradingSetup, Selection, benchmark_name
from builder.evaluation.eval_card import _headline as headline
from builder.evaluation.eval_card import (
    evaluation_facts,
    is_repo_id,
    model_index_transform,
    render_card,
    write_rows,
)
from builder.evaluation.evalplus_grader import GradeOptions
from builder.evaluation.prompts import CHAT, PROMPTS_FILE
from builder.evaluation.run import GenerationSettings, evaluate_model
from builder.pipeline.input_sources import ModelInput
from builder.pipeline.resources import WorkerResources
from builder.pipeline.step import CardUpdate, Step, StepRun
from builder.stages.eval_params import EvalParams

CHECKPOINT_PREFIX = "step-"  # the branches a training run publishes its checkpoints on
CHECKPOINT_ROWS = "checkpoints"  # where the samples of checkpoint evaluations go
BASELINE_ROWS = "baseline"  # where the baseline model's samples go


class EvalStep(Step):
    name = "eval"
    kind = "evaluation"
    params_class = EvalParams
    description = "Scores of a model on code benchmarks, every sample with its verdicts."

    params: EvalParams

    def __init__(self, params: EvalParams, context=None):
        super().__init__(params, context)
        self.results: list = []  # of the last run, for the `builder eval` front end
        self.checkpoints: dict[str, ModelInput] = {}  # branch -> checkpoint, pinned
        self.baseline: ModelInput | None = None  # the recipe's model, pinned (`baseline`)

    def open_input(self, inputs) -> ModelInput:
        p = self.params
        if p.model is None and p.input is not None:  # a model step of the recipe
            model = inputs.model_of(p.input)
        elif inputs.has_model(name := p.model or self.context.model):
            model = inputs.model_repo(name, p.revision or "main")  # any revision of the store's
        else:
            model = ModelInput(
                name, p.revision, work_dir=self.context.work_dir, origin=self.context.model_origin
            )
        if p.checkpoints:
            if not is_repo_id(model.name) or not inputs.models().repo_exists(model.name):
                raise StageError(
                    f"eval: checkpoints: {model.name} is not a model repository of the store"
                )
            branches = inputs.models().refs(model.name).branches
            self.checkpoints = {
                branch: inputs.model_repo(model.name, branch)
                for branch in sorted(branches)
                if branch.startswith(CHECKPOINT_PREFIX) and branch != model.branch
            }
        if p.baseline:
            if not self.context.model:
                raise StageError("eval: baseline: the recipe names no model to compare with")
            self.baseline = ModelInput(
                self.context.model, None, work_dir=self.context.work_dir,
                origin=self.context.model_origin,
            )  # fmt: skip
        return model

    def repo_name(self) -> str | None:
        return self.params.repo

    def fingerprint_extra(self) -> dict[str, Any]:
        p = self.params
        data = {b: _file_digest(p.data_files.get(b)) for b in self.benchmarks()}
        return {
            "checkpoints": {b: m.revision for b, m in self.checkpoints.items()} or None,
            "evalplus": metadata.version("evalplus"),
            "sandbox": self._sandbox(),
            "data": data,
            "prompts": _file_digest(str(PROMPTS_FILE)),
            "template": self.template(),
            "baseline": (
                {"model": self.baseline.name, "revision": self.baseline.revision}
                if self.baseline is not None
                else None
            ),
        }

    def template(self) -> str:
        if self.params.template is not None:
            return self.params.template
        return CHAT if self.context.prompting == "chat" else "sc2-instruct"

    def benchmarks(self) -> list[str]:
        return [benchmark_name(b) for b in self.params.benchmarks]

    def _sandbox(self) -> str:
        return self.params.sandbox or self.context.sandbox.backend

    def run(self, job: StepRun) -> dict[str, Any]:
        p = self.params
        options = GradeOptions(
            fast_check=not p.test_details, min_time_limit=p.min_time_limit,
            gt_time_limit_factor=p.gt_time_limit_factor, base_only=p.base_only,
            skip_plus_on_base_fail=not p.run_plus_after_base_fail, fix_find_zero=p.fix_find_zero,
        )  # fmt: skip
        setup = GradingSetup(self._sandbox(), p.workers, Path(p.cache_dir).expanduser(), options)
        engine = p.engine or self.context.engine.backend
        gen = GenerationSettings(
            backend=engine, n_samples=p.n_samples, temperature=p.temperature, top_p=p.top_p,
            max_tokens=p.max_tokens, seed=p.seed, template=self.template(),
            batch_size=p.batch_size,
        )  # fmt: skip
        selection = Selection(p.lcb_release, p.start_date, p.end_date)
        resources = WorkerResources()  # one engine per model, kept across benchmarks

        def evaluate(model: ModelInput) -> list:
            return [
                result
                for benchmark in self.benchmarks()
                for result in evaluate_model(
                    model.path, model.revision, [benchmark], p.data_files.get(benchmark), setup,
                    gen, p.limit, selection, self.context.engine, resources,
                )
            ]  # fmt: skip

        try:
            model = job.source
            self.results = evaluate(model)
            generation = {**dataclasses.asdict(gen), "limit": p.limit}
            facts = {
                **evaluation_facts(model.name, model.revision, self.results, generation),
                "model_branch": model.branch,  # its card gets the scores (a checkpoint's branch)
                "splits": write_rows(job.output, self.results),
            }
            if self.checkpoints:  # their rows under checkpoints/<branch>/, their scores in the card
                facts["checkpoints"] = {}
                for branch, checkpoint in self.checkpoints.items():
                    results = evaluate(checkpoint)
                    write_rows(job.output / CHECKPOINT_ROWS / branch, results)
                    found = evaluation_facts(model.name, checkpoint.revision, results, generation)
                    facts["checkpoints"][branch] = found["benchmarks"]
            if self.baseline is not None:
                before = evaluate(self.baseline)
                splits = write_rows(job.output / BASELINE_ROWS, before)
                for name, split in splits.items():
                    files = [f"{BASELINE_ROWS}/{f}" for f in split["files"]]
                    facts["splits"][f"{BASELINE_ROWS}_{name}"] = {**split, "files": files}
                facts["baseline"] = baseline_facts(self.baseline, before, self.results)
        finally:
            resources.close()
        return facts

    def card(self, manifest: dict[str, Any]) -> str:
        card = render_card(manifest, manifest["repo"])
        if manifest.get("baseline"):
            card = card.rstrip("\n") + "\n\n" + baseline_section(manifest) + "\n"
        checkpoints = manifest.get("checkpoints") or {}
        if not checkpoints:
            return card
        benchmarks = list(manifest["benchmarks"])
        where = f"samples under `{CHECKPOINT_ROWS}/<branch>/`"
        lines = ["", "## Checkpoints", "", f"Every checkpoint of `{manifest['model']}` ({where}):",
                 "", "| revision | " + " | ".join(benchmarks) + " |",
                 "| --- |" + " ---: |" * len(benchmarks)]  # fmt: skip
        for branch, benchmarks in checkpoints.items():
            scores = " | ".join(f"{headline(e['scores']):.3f}" for e in benchmarks.values())
            lines.append(f"| `{branch}` | {scores} |")
        return card.rstrip("\n") + "\n" + "\n".join(lines) + "\n"

    def commit_title(self, manifest: dict[str, Any], source: str) -> str:
        scores = manifest["benchmarks"].items()
        return "eval: " + ", ".join(f"{b} {headline(e['scores']):.3f}" for b, e in scores)

    def summary(self, manifest: dict[str, Any]) -> str:
        return self.commit_title(manifest, "")

    def card_updates(self, manifest: dict[str, Any]) -> list[CardUpdate]:
        branch = manifest.get("model_branch") or "main"
        if not is_repo_id(manifest["model"]) or re.fullmatch(r"[0-9a-f]{40}", branch):
            return []  # a folder, or a commit that no branch names: no card to write to
        title, model = "eval: update model-index", manifest["model"]
        transform = model_index_transform(manifest)
        if manifest.get("baseline"):  # the before/after table in the trained model's card too
            transform = with_baseline_section(transform, manifest)
        updates = [CardUpdate("model", model, transform, title, branch)]
        for checkpoint, benchmarks in (manifest.get("checkpoints") or {}).items():
            transform = model_index_transform({"model": model, "benchmarks": benchmarks})
            updates.append(CardUpdate("model", model, transform, title, checkpoint))
        return updates


def _file_digest(path: str | None) -> str | None:
    """A file's SHA-256 (None for a benchmark's shipped default, which its version pins)."""
    if path is None:
        return None
    try:
        return hashlib.sha256(Path(path).expanduser().read_bytes()).hexdigest()
    except OSError:
        return f"unreadable:{path}"
