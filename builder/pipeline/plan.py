"""`builder plan`: what a recipe's run will do and cost, step by step, before it starts.

For each step: whether it is up to date (and if not, which part of its fingerprint changed:
the step's version, a parameter, a setting such as the model, or its input), its input rows
(counted from the pinned input, or estimated from the step before it when that one will run),
and what it will produce: rows, prompts, samples and output tokens (from `n`, `max_tokens` and
the mean completion length measured before), sandbox programs and commits; then the time it
takes at a rate. Every figure that comes from an earlier run names it; with no earlier run and
no rate given, a figure is `None` ("unknown"), never a guess.

Rates and yields come from the `measured` block of the step's latest published manifest
(`measured.py`), or from the command line: `--rate responses=4000tok/s` (with `--gpus N`, per
GPU, as the README's capacity table counts), `--rate execute=300prog/s`, `--rate
filter=2000rows/s`, and `--rows instructions=238000` for a step's output before any run exists.
With `--gpus N` / `--cpus M`, a measured rate is first divided by the GPUs or CPUs it was
measured on, then multiplied by N or M: hours = work / (rate per unit x units).
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field

from builder.config.yaml_file import short
from builder.errors import BuilderError
from builder.pipeline.measured import measured
from builder.pipeline.publish import read_manifest
from builder.pipeline.recipe import Recipe
from builder.pipeline.repo_names import repo_for, step_context
from builder.pipeline.step import KINDS
from builder.pipeline.step_runner import plan_step
from builder.registry import STEPS
from builder.store import open_store

log = logging.getLogger(__name__)
_RATE = re.compile(r"^([\w-]+)=([0-9.]+(?:e[0-9]+)?)(tok|prog|rows)/s$")
UNITS = {"tok": "tokens", "prog": "programs", "rows": "rows"}


@dataclass
class Estimate:
    step: str
    current: bool
    why: str  # "" when up to date
    rows_in: float | None = None
    rows_in_from: str = ""  # "input" (counted) or "estimate" (the step before)
    rows_out: float | None = None
    prompts: float | None = None
    samples: float | None = None
    tokens: float | None = None  # at the measured mean completion length
    tokens_max: float | None = None  # every sample at max_tokens
    programs: float | None = None
    commits: int | None = None
    work: str = "rows"  # what the rate counts: tokens, programs or rows
    rate: float | None = None  # per second, for the hardware asked about
    rate_from: str = "unknown"
    seconds: float | None = None
    measured_from: str = ""  # the revision whose figures were used
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def parse_rates(texts: list[str]) -> dict[str, tuple[str, float]]:
    rates = {}
    for text in texts:
        match = _RATE.match(text.strip())
        if not match:
            raise BuilderError(f"--rate expects STEP=NUMBER(tok|prog|rows)/s, got {text!r:.60}")
        rates[match.group(1)] = (UNITS[match.group(3)], float(match.group(2)))
    return rates


def parse_rows(texts: list[str]) -> dict[str, int]:
    rows = {}
    for text in texts:
        name, sep, value = text.partition("=")
        if not sep or not value.strip().isdigit():
            raise BuilderError(f"--rows expects STEP=COUNT, got {text!r:.60}")
        rows[name.strip()] = int(value)
    return rows


def plan_recipe(recipe: Recipe, rates=None, rows=None, gpus=None, cpus=None) -> list[Estimate]:
    """One estimate per step, in recipe order."""
    rates, rows = rates or {}, rows or {}
    for name in [*rates, *rows]:
        if name not in recipe.stages:
            raise BuilderError(f"--rate/--rows name unknown stage '{name}'")
    store = open_store(recipe.hub.store)
    estimates: dict[str, Estimate] = {}
    published: dict[str, int | None] = {}  # each step's head rows_out, before this run
    for name in recipe.stage_names():
        upstream = (recipe.input_stage(name) or "").partition("@")[0]
        estimate, facts = _estimate(recipe, name, store, estimates.get(upstream))
        published[name] = facts.get("_rows_out")
        _follow(recipe, name, store, estimate, facts, estimates, published)
        if name in rows:
            estimate.rows_out, estimate.notes = float(rows[name]), [*estimate.notes, "--rows"]
        _time(estimate, facts, rates.get(name), gpus, cpus)
        estimates[name] = estimate
    return list(estimates.values())


def _estimate(recipe: Recipe, name: str, store, before: Estimate | None) -> tuple[Estimate, dict]:
    params = recipe.stages[name]
    step, extra = None, {}
    try:
        plan = plan_step(recipe, name, store)
        step, extra = plan.step, plan.step.fingerprint_extra() or {}
        manifest, revision, repo = plan.manifest, plan.head or "", plan.repo
        counted = plan.source.num_rows if plan.source is not None else None
        current, why = plan.current, _why(plan, extra)
    except BuilderError as err:  # its input is not published yet (or cannot be read)
        manifest, revision, repo = _latest(recipe, name, store, STEPS.load(name).kind)
        counted, current, why = None, False, f"its input is not published yet ({err})"[:200]
    if before is not None and not before.current:  # its input will be a new revision
        change = f"its input will change ({before.step} runs first)"
        joined = change if current or why.startswith("its input") else f"{why}; {change}"
        current, why = False, joined
    e = Estimate(name, current, why, commits=0 if current else 1)
    if before is not None and not before.current:
        e.rows_in, e.rows_in_from = before.rows_out, "estimate"
    elif counted is not None:
        e.rows_in, e.rows_in_from = float(counted), "input"
    elif before is not None:
        e.rows_in, e.rows_in_from = before.rows_out, "estimate"
    if e.rows_in is not None and params.limit is not None:
        e.rows_in = min(e.rows_in, float(params.limit))
    if current and manifest is not None:
        e.rows_out = manifest.get("rows_out")
        return e, {"_rows_out": manifest.get("rows_out"), "_step": step}
    if manifest is None:  # what the parameters alone say (samples, tokens at most)
        e.notes.append("no earlier run: yields unknown")
        _yields(e, {"work": "tokens" if hasattr(params, "max_tokens") else "rows"}, params)
        return e, {"_step": step}
    facts = dict(manifest.get("measured") or measured(manifest))
    facts.update(_rows_out=manifest.get("rows_out"), _step=step)
    facts["_mismatch"] = _mismatch(recipe, facts, extra)
    e.measured_from = f"{repo}@{revision[:12]}"
    _yields(e, facts, params)
    if name == "train":
        e.commits = 1 + len(manifest.get("checkpoints") or [])
    return e, facts


def _follow(recipe, name, store, e: Estimate, facts, estimates, published) -> None:
    """A step whose rows follow another's (`RowStage.rows_follow`, e.g. one per task): its
    output scales with that step's estimate, by the ratio the last run measured."""
    if e.current or facts.get("_rows_out") is None:
        return
    step = facts.get("_step") or STEPS.load(name)(recipe.stages[name], step_context(recipe, store))
    leader = step.rows_follow()
    before, after = published.get(leader), estimates.get(leader)
    if leader and before and after is not None and after.rows_out is not None:
        e.rows_out = after.rows_out * facts["_rows_out"] / before
        e.notes.append(f"rows follow {leader}'s")


def _yields(e: Estimate, facts: dict, params) -> None:
    e.work = facts.get("work", "rows")
    if e.rows_in is None:
        return
    if e.work == "tokens":
        e.prompts = e.rows_in * facts.get("prompts_per_row", 1)
        n = getattr(params, "n", None) or facts.get("samples_per_prompt", 1)
        e.samples = e.prompts * n
        if "tokens_per_sample" in facts:
            e.tokens = e.samples * facts["tokens_per_sample"]
        if getattr(params, "max_tokens", None):
            e.tokens_max = e.samples * params.max_tokens
        if "kept_per_sample" in facts:
            e.rows_out = e.samples * facts["kept_per_sample"]
        return
    if "keep_rate" in facts:
        e.rows_out = e.rows_in * facts["keep_rate"]
    if e.work == "programs" and "programs_per_row" in facts:
        e.programs = e.rows_in * facts["programs_per_row"]


def _time(e: Estimate, facts: dict, given, gpus, cpus) -> None:
    if e.current:
        e.seconds, e.rate_from = 0.0, "up to date"
        return
    on_gpus = e.work == "tokens" and gpus
    units = gpus if on_gpus else cpus
    if given is not None:
        (e.work, rate) = given
        e.rate = rate * (units or 1)
        e.rate_from = f"--rate {rate:g} {e.work}/s" + (f" x {units}" if units else "")
    else:
        _measured_rate(e, facts, units, "gpus" if on_gpus else "cpus")
    amount = {"tokens": e.tokens if e.tokens is not None else e.tokens_max,
              "programs": e.programs, "rows": e.rows_in}.get(e.work)  # fmt: skip
    if e.rate and amount is not None:
        e.seconds = amount / e.rate


def _mismatch(recipe: Recipe, facts: dict, extra: dict) -> str:
    """Why the measured rate is not this run's: another engine, model or sandbox ("" if none;
    a manifest from before `measured` existed names no engine, and is taken as it is)."""
    now = {"sandbox": recipe.sandbox.backend}
    if facts.get("work") == "tokens":
        now["engine"] = recipe.engine.backend
        now["model"] = extra.get("model")
    for key, value in now.items():
        if facts.get(key) is not None and value is not None and facts[key] != value:
            return f"measured with {key} {facts[key]}, this run uses {value}"
    return ""


def _measured_rate(e: Estimate, facts: dict, units, unit: str) -> None:
    key = {"tokens": "tokens_per_s", "programs": "programs_per_s"}.get(e.work, "rows_per_s")
    rate, label = facts.get(key), {"gpus": "GPUs", "cpus": "CPUs"}[unit]
    if rate is None:
        return
    if facts.get("_mismatch"):
        e.rate_from = f"unknown: {facts['_mismatch']}; give --rate {e.step}=..."
        return
    where = f"measured ({e.measured_from}, {facts.get('cpus')} CPUs, {facts.get('gpus')} GPUs)"
    if not units:
        e.rate, e.rate_from = rate, where
    elif facts.get(unit):
        e.rate = rate / facts[unit] * units
        e.rate_from = f"{where} / {facts[unit]} x {units} {label}"
    else:
        suffix = {"tokens": "tok", "programs": "prog"}.get(e.work, "rows")
        e.rate_from = f"unknown: measured without {label}; give --rate {e.step}=N{suffix}/s"


def _why(plan, extra: dict) -> str:
    """Which part of the fingerprint differs from the published head's (or why none is)."""
    if plan.current:
        return ""
    manifest = plan.manifest
    if manifest is None:
        return "not published yet"
    step, reasons = plan.step, []
    if manifest.get("stage_version") != step.version:
        reasons.append(f"version {manifest.get('stage_version')} -> {step.version}")
    old = manifest.get("params") or {}
    for key, value in step.params.fingerprint_items().items():
        if key in old and old[key] != value:
            reasons.append(f"{key}: {short(old[key])} -> {short(value)}")
        elif key not in old:
            reasons.append(f"{key}: set to {short(value)}")
    settings = manifest.get("settings") or {}
    for key, value in extra.items():
        if settings.get(key) != _plain(value):
            reasons.append(f"setting {key} changed")
    source = manifest.get("input") or {}
    ref = plan.source.ref if plan.source is not None else {}
    if source.get("revision") != (ref or {}).get("revision"):
        reasons.append("input: a new revision")
    return "; ".join(reasons) or "fingerprint differs"


def _latest(recipe: Recipe, name: str, store, kind: str):
    """The head manifest of the step's repository (current or not), its revision and the
    repository."""
    repo = ""
    try:
        repos = open_store(store.uri, KINDS[kind])
        repo = repo_for(recipe, name, store)
        if not repos.repo_exists(repo):
            return None, "", repo
        head = repos.resolve(repo)
        return read_manifest(repos, repo, head), head, repo
    except BuilderError as err:
        log.debug("%s: no earlier figures: %s", name, err)
        return None, "", repo


def _plain(value):
    import json

    return json.loads(json.dumps(value, default=str))
