"""`mutate`: how strong is each passing sample's own test block? Measured by mutation.

For every sample that passed in `execute`, up to `mutants` small breaks of its implementation
(`mutants.py`: operators flipped, constants off by one, a branch or a statement removed, a return
value replaced) are each run with the sample's tests, in the same sandbox and through the same
verdict cache as `execute`, so a rerun or a resume after `kill -9` runs nothing twice. A mutant
is caught (killed) when its program does not pass: a failed assert, an exception, a timeout.
Published per sample:

- `test_strength`: caught / mutants (null when not measured);
- `test_mutants`, `test_mutants_killed`;
- `test_survivors`: the mutants the tests missed, as `operator@line` of the implementation;
- `mutation_skipped`: why a sample was not measured (`not_passed`, `malformed_<why>` when its
  response does not split into implementation and tests, `implementation_not_in_program`,
  `no_mutable_code`, `slow_sample` when its own run took over half of `timeout_s`, since a
  timeout would then not tell a caught break from a slow run), "" when it was.

Nothing is dropped: `select` reads the strengths (`strongest_tests`, `min_test_strength`).
Cost: at most `mutants` programs per passing sample; a mutant that loops forever costs one
`timeout_s` (2 s by default, where `execute` allows 10: timeouts were most of the wall time at
10). `benchmarks/bench_mutate.py` measures programs per sample and wall time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from builder.config.fields import added_later, bounded, runtime_only
from builder.pipeline.rows import ChunkResult, Row
from builder.pipeline.step import StepParams
from builder.sandbox.response_code import program_from_response
from builder.stages.execute.figures import StrengthFigures, pass_rate_figure
from builder.stages.execute.mutants import Mutant, mutants
from builder.stages.execute.sandbox_stage import SandboxStage
from builder.stages.execute.task_figures import failure_kind
from builder.stages.generation.parse import parse_response


@dataclass
class MutateParams(StepParams):
    code_column: str = "response"
    mutants: int = bounded(8, ge=1)  # per passing sample: the bound on this step's cost
    seed: int = bounded(0, ge=0)  # which mutants, when a sample has more sites than `mutants`
    # A mutant that loops forever costs a whole timeout: short, since the sample itself ran in
    # under half of it (else it is not measured, `slow_sample`).
    timeout_s: float = bounded(2.0, gt=0)
    memory_mb: int = bounded(4096, ge=1)
    batch_size: int = runtime_only(16, ge=1)  # programs per sandbox call (committed together)
    workers: int = runtime_only(0, ge=0)  # sandbox workers; 0: every core
    # The column `execute` grouped a task's samples by (its `task_column`), for the pass-rate
    # figure this step repeats.
    task_column: str = added_later("instruction_id")


@dataclass
class _Plan:
    """One sample's mutants and their programs, or why it has none."""

    skipped: str = ""
    mutants: tuple[Mutant, ...] = ()
    programs: tuple[str, ...] = ()


class MutateStage(SandboxStage):
    name = "mutate"
    params_class = MutateParams
    adds = (
        "test_strength",
        "test_mutants",
        "test_mutants_killed",
        "test_survivors",
        "mutation_skipped",
    )
    chunk_size = 256  # up to 8 programs a row: a chunk is about as much work as execute's
    version = 1
    description = (
        "Test strength by mutation: how many small breaks of each passing sample's code its "
        "own tests catch."
    )

    params: MutateParams

    def __init__(self, params: MutateParams, context=None):
        super().__init__(params, context)
        self._figures, self._rates = StrengthFigures(), {}
        self.reads = (params.code_column, "exec_status", "exec_duration_s")

    def process(self, rows: list[Row]) -> ChunkResult:
        result = ChunkResult(stats=Counter())
        plans = [self._plan(row) for row in rows]
        programs = [p for plan in plans for p in plan.programs]
        verdicts = iter(self.verdicts(programs, result.stats))
        for row, plan in zip(rows, plans):
            runs = [v for _, v in zip(plan.programs, verdicts)]
            caught = [v["status"] != "pass" for v in runs]
            for v in runs:  # how the tests caught them (a timeout costs a whole `timeout_s`)
                if v["status"] != "pass":
                    result.stats[f"caught_by:{failure_kind(v['status'], v['error'])}"] += 1
            result.kept.append({**row, **_columns(plan, caught)})
            if plan.skipped:
                result.stats[f"skipped:{plan.skipped}"] += 1
                continue
            result.stats["measured"] += 1
            result.stats["mutants"] += len(caught)
            result.stats["killed"] += sum(caught)
            for mutant, killed in zip(plan.mutants, caught):
                result.stats[f"{'killed' if killed else 'survived'}:{mutant.operator}"] += 1
        return result

    def _plan(self, row: Row) -> _Plan:
        if row["exec_status"] != "pass":
            return _Plan("not_passed")
        if row["exec_duration_s"] > self.params.timeout_s / 2:
            return _Plan("slow_sample")
        response = row.get(self.params.code_column) or ""
        parsed = parse_response(response, untagged=row.get("response_format") == "untagged")
        if not parsed.ok:
            return _Plan(f"malformed_{parsed.error}")
        program = program_from_response(response) or ""
        implementation = parsed.value.implementation
        at = program.find(implementation) if implementation.strip() else -1
        if at < 0:
            return _Plan("implementation_not_in_program")
        found = mutants(implementation, self.params.mutants, self.params.seed)
        if not found:
            return _Plan("no_mutable_code")
        before, after = program[:at], program[at + len(implementation) :]
        return _Plan("", tuple(found), tuple(before + m.code + after for m in found))

    def survey(self, rows: Iterable[Row]) -> None:
        self._figures, self._rates = StrengthFigures(), {}
        for row in rows:
            self._figures.add(row)
            if row.get("task_pass_rate") is not None:  # execute's, per task: shown here too
                task = row.get(self.params.task_column)
                self._rates[("row", len(self._rates)) if task is None else task] = row[
                    "task_pass_rate"]  # fmt: skip

    def figures(self) -> list[dict]:
        rates = [pass_rate_figure(self._rates)] if self._rates else []
        return rates + self._figures.figures()

    def card_notes(self) -> str:
        return (
            f"Each passing sample's implementation was broken in up to {self.params.mutants} "
            "small ways (a comparison or an operator flipped, a constant off by one, a branch or "
            "a statement removed, a return value replaced), and its own tests run against each "
            "break. `test_strength` is the share of breaks the tests caught (`test_mutants`, "
            "`test_mutants_killed`; `test_survivors` names the ones they missed). A test block "
            "that catches nothing is weak whatever it asserts. Some breaks change nothing a test "
            "could see, so compare strengths rather than reading 1.0 as the goal. The counts "
            "above give the kills per operator and why samples were not measured "
            "(`mutation_skipped`)."
        )


def _columns(plan: _Plan, caught: list[bool]) -> Row:
    if plan.skipped:
        return {"test_strength": None, "test_mutants": 0, "test_mutants_killed": 0,
                "test_survivors": [], "mutation_skipped": plan.skipped}  # fmt: skip
    survivors = [f"{m.operator}@{m.line}" for m, killed in zip(plan.mutants, caught) if not killed]
    return {
        "test_strength": round(sum(caught) / len(caught), 4),
        "test_mutants": len(caught),
        "test_mutants_killed": sum(caught),
        "test_survivors": survivors,
        "mutation_skipped": "",
    }
