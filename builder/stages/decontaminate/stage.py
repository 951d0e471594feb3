"""`decontaminate`: drop functions that contain a benchmark's prompt, docstring or solution.

Benchmarks (HumanEval+, MBPP+, DS-1000, LiveCodeBench: all their tasks, not a train split) are
read from their sources (the recipe's, else the defaults) and pinned before any work
(`builder.stages.decontaminate.benchmarks`). Those listed in `optional` (by default DS-1000 and LiveCodeBench,
which live on the Hub) are used where available: one that cannot be reached is skipped with a
warning, and the card and fingerprint say so; any other missing benchmark is an error.
A function is dropped when, after deleting all whitespace from both, it contains any of their
non-trivial pieces as a substring; one-line canonical solutions and pieces under 20 characters
are not searched for (`builder.stages.decontaminate.matching`). The drop detail names the benchmark,
task and field of every piece found, e.g. `humaneval+ HumanEval/12 (canonical_solution)`, and
the stats count the dropped functions per benchmark (`matched:<benchmark>`).

Limits: exact copies only (whitespace aside): a solution with renamed variables, other quotes
or added comments inside it is not found.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from builder.config.fields import runtime_only
from builder.errors import RecipeError
from builder.pipeline.rows import ChunkResult, Drop, Row, RowStage, text_of
from builder.pipeline.step import StepContext, StepParams
from builder.stages.decontaminate.benchmarks import (
    MIN_PIECE_CHARS,
    Matcher,
    check_names,
    describe_matches,
    load_pieces,
    resolve,
)


@dataclass
class DecontaminateParams(StepParams):
    benchmarks: list[str] = field(
        default_factory=lambda: ["humaneval+", "mbpp+", "ds1000", "livecodebench"]
    )
    # benchmark -> a local file (.jsonl, .jsonl.gz, .json, .parquet) or
    # hub:<owner>/<name>@<commit>[:<file>,...]; benchmarks not named use their default source
    # (builder.benchmarks_data.BENCHMARKS).
    sources: dict[str, str] = field(default_factory=dict)
    # Used where available: skipped (with a warning, a note in the card, and "unavailable" in
    # the fingerprint) when they cannot be found; any other missing benchmark is an error.
    optional: list[str] = field(default_factory=lambda: ["ds1000", "livecodebench"])
    num_proc: int = runtime_only(1, ge=1)

    def __post_init__(self):
        problem = check_names(self.benchmarks, self.sources, self.optional)
        if problem:
            raise RecipeError(f"stages.decontaminate.{problem}")


class DecontaminateStage(RowStage):
    name = "decontaminate"
    params_class = DecontaminateParams
    reads = ("function",)
    chunk_size = 5000
    description = "Functions that contain no benchmark prompt, docstring or canonical solution."

    params: DecontaminateParams

    def __init__(self, params: DecontaminateParams, context: StepContext | None = None):
        super().__init__(params, context)
        self._resolved = None
        self._matcher = None
        self._loaded: dict[str, tuple[int, int]] = {}  # benchmark -> (tasks, pieces)

    def __getstate__(self):
        return {**self.__dict__, "_matcher": None}  # workers build their own

    def resolved(self):
        """Every benchmark pinned: once, in the process that plans the run (the runner asks for
        the fingerprint before any work), then carried to the workers with the stage."""
        if self._resolved is None:
            self._resolved = resolve(
                self.params.benchmarks, self.params.sources, self.params.optional
            )
        return self._resolved

    def fingerprint_extra(self) -> dict:
        # The pins, not only the sources: a local file edited in place is a new input, and an
        # optional benchmark found by a later run makes a new revision.
        return {"benchmarks": {r.benchmark.name: r.pin or "unavailable" for r in self.resolved()}}

    def num_proc(self) -> int:
        return max(1, self.params.num_proc)

    def matcher(self):
        if self._matcher is None:
            pieces = []
            for item in self.resolved():
                if item.available:
                    tasks, found = load_pieces(item)
                    self._loaded[item.benchmark.name] = (tasks, len(found))
                    pieces.extend(found)
            self._matcher = Matcher(pieces)
        return self._matcher

    def process(self, rows: list[Row]) -> ChunkResult:
        matcher = self.matcher()
        result = ChunkResult()
        for row in rows:
            found = matcher.find(text_of(row, "function"))
            if not found:
                result.kept.append(row)
                continue
            result.dropped.append(Drop(row, "contaminated", describe_matches(found)))
            for benchmark in sorted({p.benchmark for p in found}):
                result.stats[f"matched:{benchmark}"] += 1
        return result

    def card_notes(self) -> str:
        matcher = self.matcher()
        trivial = {}
        for piece in matcher.trivial:
            trivial[piece.benchmark] = trivial.get(piece.benchmark, 0) + 1
        lines = [
            (
                "Functions are dropped when they contain a benchmark task's prompt, docstring or "
                "canonical solution: after deleting every whitespace character from both texts, "
                "the piece is a substring of the function. Not searched for: canonical solutions "
                f"of one code line and pieces shorter than {MIN_PIECE_CHARS} characters (trivial). "
                "Every task of each benchmark is used, not only a test split. "
                "`drop_detail` names the benchmark, task and fields found; the counts "
                "`matched:<benchmark>` are dropped functions per benchmark."
            ),
            "",
            "| benchmark | pinned version | tasks | pieces searched | trivial, not searched |",
            "| --- | --- | ---: | ---: | ---: |",
        ]
        for item in self.resolved():
            name = item.benchmark.name
            if not item.available:
                lines.append(
                    f"| {item.benchmark.title} (`{name}`) | not available, skipped (optional): "
                    f"{item.reason} | - | - | - |"
                )
                continue
            tasks, pieces = self._loaded[name]
            lines.append(
                f"| {item.benchmark.title} (`{name}`) | `{item.pin}` | {tasks} | "
                f"{pieces - trivial.get(name, 0)} | {trivial.get(name, 0)} |"
            )
        return "\n".join(lines)

