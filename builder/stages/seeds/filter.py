"""`filter`: static rules that keep functions worth turning into seeds.

Rules run in a fixed order and the first one a function fails is its drop reason:

1. `no_return_value`: the function itself has no `return <expression>` (one in a nested def
   does not count). Functions that return nothing are hard to test by execution.
2. `no_arguments`: fewer than `min_args` parameters (any kind counts, `*args` included).
3. `too_long`: more than `max_lines` lines.
4. `bad_word`: one of `bad_words` (todo, fixme, bug) anywhere in the text, case-insensitive,
   as a whole word (`debug` passes).
5. `bad_import`: imports one of `bad_imports` (argparse, os, sys, ...) or a submodule of one
   anywhere inside the function, or uses one by name without importing it (the `imports` stage
   would import it: the published pipeline applied this rule after import inference).

A text that does not parse is dropped as `syntax_error`, one that is not a function definition
as `not_a_function` (neither comes out of `extract`). Kept rows are unchanged.

The published pipeline's forms of four rules, one setting each (all off by default, where ours
is the better rule; `README.md` has the table, `bench_seeds_reference.py` the counts):
`nested_returns` (a `return` with a value anywhere in the text counts, a nested function's
too), `arguments_by_def_line` (no arguments means a line starting with `def ` that contains
`():`, instead of counting parameters against `min_args`), `bad_word_substrings` (`debug`
contains `bug`), `bad_import_substrings` (`import X` / `from X` anywhere in the lowercased
text, so `import osgeo` and a docstring's "from os" count; a use without import still does).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from builder.config.fields import added_later, bounded, runtime_only
from builder.pipeline.rows import ChunkResult, Drop, Row, RowStage
from builder.pipeline.step import StepContext, StepParams
from builder.stages import published_rules
from builder.stages.seeds import function_rules as rules


@dataclass
class FilterParams(StepParams):
    max_lines: int = bounded(150, ge=1)
    min_args: int = bounded(1, ge=0)
    bad_words: list[str] = field(default_factory=lambda: ["todo", "fixme", "bug"])
    bad_word_substrings: bool = False  # True: match bad words inside other words, as published
    # The published pipeline's forms of three more rules (the module docstring says how).
    bad_import_substrings: bool = added_later(False)
    nested_returns: bool = added_later(False)
    arguments_by_def_line: bool = added_later(False)
    bad_imports: list[str] = field(
        default_factory=lambda: [
            "argparse", "os", "subprocess", "sys", "setuptools", "distutils", "matplotlib",
            "seaborn",
        ]
    )
    num_proc: int = runtime_only(0, ge=0)  # 0: every core


class FilterStage(RowStage):
    name = "filter"
    params_class = FilterParams
    reads = ("function",)
    adds = ()
    chunk_size = 2000
    description = "Functions that return a value, take arguments, are short, and import nothing hard to run."

    params: FilterParams

    def __init__(self, params: FilterParams, context: StepContext | None = None):
        super().__init__(params, context)
        self._bad_words = rules.bad_word_pattern(params.bad_words, params.bad_word_substrings)
        self._bad_imports = set(params.bad_imports)

    def num_proc(self) -> int:
        return self.params.num_proc or len(os.sched_getaffinity(0))

    def process(self, rows: list[Row]) -> ChunkResult:
        result = ChunkResult()
        for row in rows:
            failure = self.first_failure(row["function"])
            if failure is None:
                result.kept.append(row)
            else:
                result.dropped.append(Drop(row, *failure))
        return result

    def first_failure(self, text: str) -> tuple[str, str] | None:
        """(reason, detail) of the first rule `text` fails, or None if it passes them all."""
        try:
            node = rules.parse_function(text)
        except rules.NotAFunction as err:
            return "not_a_function", str(err)
        except (SyntaxError, ValueError, RecursionError, MemoryError) as err:
            return "syntax_error", f"{type(err).__name__}: {getattr(err, 'msg', None) or err}"[:200]
        p = self.params
        checks = (
            ("no_return_value", lambda: rules.no_return_value(node, p.nested_returns)),
            ("no_arguments", lambda: (
                rules.empty_parentheses_on_def_line(text) if p.arguments_by_def_line
                else rules.too_few_arguments(node, p.min_args)
            )),
            ("too_long", lambda: rules.too_long(text, p.max_lines)),
            ("bad_word", lambda: rules.bad_word(text, self._bad_words)),
            ("bad_import", lambda: rules.bad_import(
                node, self._bad_imports, text if p.bad_import_substrings else None
            )),
        )  # fmt: skip
        for reason, check in checks:
            detail = check()
            if detail is not None:
                return reason, detail
        return None

    def card_notes(self) -> str:
        p = self.params
        matching = "as substrings" if p.bad_word_substrings else "as whole words"
        where = "anywhere in its text" if p.nested_returns else "in the function itself"
        arguments = (
            "no line starting with `def ` that contains `():`" if p.arguments_by_def_line
            else f"at least {p.min_args} parameter(s) of any kind"
        )  # fmt: skip
        modules = ", ".join(p.bad_imports) or "nothing"
        imports = (
            f"no `import X` / `from X` anywhere in the lowercased text for X in {modules}"
            if p.bad_import_substrings
            else f"no import of {modules} (or their submodules) inside the function"
        )  # fmt: skip
        return (
            "Rules, in order (a function is dropped for the first it fails): a `return` with a "
            f"value {where} (`no_return_value`); {arguments} (`no_arguments`); "
            f"at most {p.max_lines} lines "
            f"(`too_long`); none of {', '.join(p.bad_words) or 'no words'} anywhere in the "
            f"text, case-insensitive, {matching} (`bad_word`); {imports} "
            "and no use of one of them as an undefined name, which import inference would "
            "turn into an import (`bad_import`)."
            + published_rules.card_note("filter", p)
        )
