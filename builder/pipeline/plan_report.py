"""`builder plan`'s estimates as people read them: a table with each step's reason and rate,
and `builder run`'s log lines (the estimate at its start, then how far off each step was)."""

from __future__ import annotations

import logging

from builder.pipeline.plan import Estimate, plan_recipe
from builder.pipeline.recipe import Recipe

log = logging.getLogger(__name__)


def estimate_run(recipe: Recipe, selected: list[str]) -> dict[str, Estimate]:
    """`builder run`'s estimate at its start, logged per step that will run; {} if it cannot
    be made (an estimate never stops a run)."""
    try:
        estimates = {e.step: e for e in plan_recipe(recipe) if e.step in selected}
    except Exception as err:  # noqa: BLE001 - the run goes on without an estimate
        log.info("plan: no estimate (%s)", err)
        return {}
    for e in estimates.values():
        if not e.current:
            log.info("plan: %s will run (%s): rows out %s, tokens %s, programs %s, time %s",
                     e.step, e.why, _n(e.rows_out), _n(e.tokens), _n(e.programs),
                     _duration(e.seconds))  # fmt: skip
    return estimates


def compare_estimate(e: Estimate, manifest: dict | None) -> None:
    """Log how far the estimate was from what the step did."""
    if e.current or not manifest or manifest.get("rows_out") is None:
        return
    stats, timings = manifest.get("stats") or {}, manifest.get("timings") or {}
    actual = {"rows out": (manifest["rows_out"], e.rows_out),
              "tokens": (stats.get("output_tokens"), e.tokens),
              "seconds": (timings.get("process_s"), e.seconds)}  # fmt: skip
    parts = [f"{label} {_n(real)} (estimated {_n(guess)}{_off(real, guess)})"
             for label, (real, guess) in actual.items() if real is not None]  # fmt: skip
    log.info("plan: %s did %s", e.step, ", ".join(parts))


def compare_total(estimates: list[Estimate], seconds: float) -> None:
    """The whole run against the estimate of the steps that were to run."""
    running = [e for e in estimates if not e.current]
    if not running:
        return
    guessed = [e.seconds for e in running if e.seconds is not None]
    unknown = len(running) - len(guessed)
    if not guessed:
        log.info("plan: the run took %s (no estimate: no earlier figures)", _duration(seconds))
        return
    more = f", and unknown for {unknown} steps" if unknown else ""
    log.info("plan: the run took %s (estimated %s%s)", _duration(seconds),
             _duration(sum(guessed)), more)  # fmt: skip


def _off(real, guess) -> str:
    if guess is None or not real:
        return ""
    return f", {100 * (guess - real) / real:+.0f}%"


def plan_table(estimates: list[Estimate]) -> str:
    """The plan as a text table, then each step's reason and rate on their own lines."""
    header = ("step", "status", "rows in", "rows out", "prompts", "samples", "tokens",
              "tokens max", "programs", "commits", "time")  # fmt: skip
    table = [header]
    total = 0.0
    for e in estimates:
        status = "up to date" if e.current else "runs"
        work = [e.prompts, e.samples, e.tokens, e.tokens_max, e.programs]
        table.append((e.step, status, _n(e.rows_in, e.rows_in_from == "estimate"),
                      _n(e.rows_out, not e.current),
                      *("-" if e.current else _n(v) for v in work),
                      _n(e.commits), _duration(e.seconds)))  # fmt: skip
        total += e.seconds or 0.0
    unknown = [e.step for e in estimates if e.seconds is None]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in
                       enumerate(zip(row, widths))).rstrip() for row in table]  # fmt: skip
    lines.append("")
    lines.append(f"total: {_duration(total)}" + (
        f" (and unknown for {', '.join(unknown)})" if unknown else ""))  # fmt: skip
    lines += [f"{e.step}: {e.why}; rate {e.rate_from}" + (f"; {', '.join(e.notes)}" if e.notes
              else "") for e in estimates if not e.current]  # fmt: skip
    return "\n".join(lines)


def _n(value, estimated: bool = False) -> str:
    if value is None:
        return "unknown"
    return ("~" if estimated else "") + f"{round(value):,}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"
