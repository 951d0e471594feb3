"""Where our seed rules differ from the published pipeline's, and by how much.

Each rule that has a setting for the published pipeline's form is listed in `RULES` with the
published value and what the difference does. How many functions each changed on the
side-by-side benchmark's corpus is a measurement, kept in `builder/data/published_rules.json`
(`benchmarks/bench_seeds_reference.py --write` rewrites it). A step's card names every rule
whose setting is not the published one, with its count, so a dataset built with our defaults
says how it departs from the reference.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

from builder.data import PUBLISHED_RULES


@dataclass(frozen=True)
class Rule:
    step: str
    setting: str
    published: Any  # the value under which the rule behaves as the published scripts
    effect: str  # what our default does differently, in a few words


RULES = (
    Rule("extract", "docstring_quotes", "double",
         "docstrings opened with `'''` or a prefix (`r\"\"\"`), and empty ones, are extracted too"),
    Rule("extract", "trailing_comments", True,
         "comment lines after the last statement are not part of the function"),
    Rule("filter", "nested_returns", True,
         "a `return` with a value only in a nested function or class does not count"),
    Rule("filter", "arguments_by_def_line", True,
         "parameters are counted (the published `():` test misses `async def f():`, "
         "`def f() -> T:` and a `def` over several lines)"),
    Rule("filter", "bad_word_substrings", True,
         "bad words match whole words only (`debug` is not `bug`)"),
    Rule("filter", "bad_import_substrings", True,
         "bad imports are import statements of the module or its submodules (`import osgeo` "
         "and a docstring's \"from os\" are not `os`; `import json, os` is)"),
    Rule("typecheck", "type_checking_mode", "standard",
         "Pyright checks in basic mode (its default, which the published scripts ran, is "
         "standard: a possibly unbound variable or an unknown attribute of a function is an "
         "error there)"),
    Rule("typecheck", "report_missing_imports", True,
         "an import Pyright cannot resolve where the step runs is not an error (the published "
         "run dropped every function whose imports its own machine lacked)"),
)  # fmt: skip


@functools.cache
def measured() -> dict:
    """The benchmark's figures, or {} where the file is missing (a source checkout before
    the benchmark ran)."""
    try:
        return json.loads(PUBLISHED_RULES.read_text())
    except FileNotFoundError:
        return {}


def differences(step: str, params: Any) -> list[Rule]:
    """The rules of `step` whose setting in `params` is not the published pipeline's."""
    return [r for r in RULES if r.step == step and getattr(params, r.setting) != r.published]


def card_note(step: str, params: Any) -> str:
    """A sentence per difference, to append to a step's card notes ("" when there is none)."""
    rules = differences(step, params)
    if not rules:
        return ""
    facts = measured()
    items = "; ".join(f"{r.effect} ({count(r.setting)}; `{r.setting}: "
                      f"{json.dumps(r.published)}` restores the published rule)" for r in rules)
    where = f", counted on {facts['corpus']} by `{facts['measured_with']}`" if facts else ""
    return f" Deliberate differences from the published pipeline's rules{where}: {items}."


def count(setting: str) -> str:
    """"N of M functions" decided differently by the setting alone on the benchmark corpus."""
    facts = measured()
    n, of = facts.get("changed", {}).get(setting), facts.get("of", {}).get(setting)
    return "not measured" if n is None or of is None else f"{n:,} of {of:,} functions"
