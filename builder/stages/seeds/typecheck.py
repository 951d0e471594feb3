"""`typecheck`: Pyright over each function's standalone `code`; any error drops the function.

Each function is checked as if it were alone, by a warm Pyright language server per worker
(owned by the worker for its lifetime) (see `builder/seeds/pyright_server.py`), with the settings of
`builder/seeds/pyright_setup.py`: basic mode, errors only, unresolved imports not reported unless
`report_missing_imports`. No function can see another, and each starts from an empty type cache,
so its verdict does not depend on its chunk, on the order of the rows or on the process count.

Drops: `type_error` (the detail lists the first errors with their rule names),
`typecheck_timeout` (no verdict within `timeout_s`) and `typecheck_crash` (the server died on
it). Stats count, for each Pyright rule, the functions with at least one error of that rule.
Kept rows are unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass

from builder.config.fields import added_later, bounded, runtime_only
from builder.errors import RecipeError
from builder.pipeline.rows import ChunkResult, Drop, Row, RowStage
from builder.pipeline.step import StepParams
from builder.stages import published_rules
from builder.stages.seeds.pyright_server import Failure, PyrightServer
from builder.stages.seeds.pyright_setup import (
    describe,
    installed_pyright_version,
    node_version,
    pyright_settings,
)


@dataclass
class TypecheckParams(StepParams):
    report_missing_imports: bool = False
    # Pyright's typeCheckingMode: off, basic, standard (its own default, so the published
    # pipeline's, which gave it no configuration) or strict.
    type_checking_mode: str = added_later("basic")
    timeout_s: float = bounded(60.0, gt=0)  # per function; reaching it drops the function
    # Pyright processes; 0: half the cores (one Pyright keeps ~1.5 cores busy: V8 compiles and
    # collects garbage on helper threads), at least 1.
    num_proc: int = runtime_only(0, ge=0)

    def __post_init__(self):
        if self.type_checking_mode not in ("off", "basic", "standard", "strict"):
            raise RecipeError(
                "stages.typecheck.type_checking_mode must be off, basic, standard or strict, "
                f"got {self.type_checking_mode!r:.40}"
            )


class TypecheckStage(RowStage):
    name = "typecheck"
    params_class = TypecheckParams
    reads = ("code",)
    adds = ()
    version = 2  # 2: each function from an empty type cache (1 shared it within a chunk)
    # Small chunks spread the work evenly over the worker processes; each worker's server
    # stays warm from one chunk to the next, so a chunk costs no start-up.
    chunk_size = 250
    description = "Functions on which Pyright (basic mode) reports no error."

    params: TypecheckParams

    def fingerprint_extra(self) -> dict:
        """Pyright's version and settings decide the verdicts as much as the parameters do."""

        return {"pyright": installed_pyright_version(), "pyright_settings": self.settings()}

    def num_proc(self) -> int:
        return self.params.num_proc or max(1, len(os.sched_getaffinity(0)) // 2)

    def settings(self) -> dict:
        p = self.params
        return pyright_settings(p.report_missing_imports, p.type_checking_mode)

    def process(self, rows: list[Row]) -> ChunkResult:
        settings, timeout = self.settings(), self.params.timeout_s
        server = self.worker_resources.get(  # warm for the worker's life, from chunk to chunk
            ("pyright", json.dumps(settings, sort_keys=True), timeout),
            lambda: PyrightServer(settings, timeout),
            group="pyright",
        )
        keys = [code_key(row["code"]) for row in rows]
        code_by_key = dict(zip(keys, (row["code"] for row in rows)))  # identical code: once
        verdicts = server.check(code_by_key)
        result = ChunkResult()
        for row, key in zip(rows, keys):
            verdict = verdicts[key]
            if isinstance(verdict, Failure):
                result.dropped.append(Drop(row, verdict.reason, verdict.detail))
            elif verdict:
                result.dropped.append(Drop(row, "type_error", describe(verdict)))
                for rule in sorted({f.rule for f in verdict}):
                    result.stats[f"functions_with_{rule}"] += 1
            else:
                result.kept.append(row)
        return result

    def card_notes(self) -> str:
        missing = ("an error" if self.params.report_missing_imports else
                   "not reported (names from such a module are then unknown, not errors)")
        return (
            f"Checked with Pyright {installed_pyright_version()} (Node.js {node_version()}) on "
            f"Python {sys.version_info.major}.{sys.version_info.minor}, each function's `code` checked "
            "as if alone (its own file, an empty type cache), with this `pyrightconfig.json`: "
            f"`{json.dumps(self.settings(), sort_keys=True)}`. Imports resolve against the "
            "Python environment the stage ran in (so a third-party package is checked only "
            f"where it is installed); an import that does not resolve is {missing}. Any error "
            "drops the function (`type_error`; the detail lists its first errors with their "
            "rules, line numbers counted in `code`); warnings do not. The published pipeline "
            "ran Pyright's command line over batches of 250 files, in an environment with "
            "common packages installed; here a warm Pyright language server per process "
            "checks the same files with the same settings. A file's findings in a batch can "
            "differ from its findings alone (rarely: Pyright's inference through unannotated "
            "library code depends on what it evaluated before); here they never do."
            + published_rules.card_note("typecheck", self.params)
        )


def code_key(code: str) -> str:
    """The hash of a function's code: identical code is checked once, and the command-line
    baseline names each function's file by it."""
    return hashlib.sha256(code.encode()).hexdigest()[:20]
