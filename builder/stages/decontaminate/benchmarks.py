"""Benchmarks that training data must not contain: which, where from, pinned how.

Each benchmark has a recipe name, a format (see `loaders.py`) and a default source
(`sources.py`): for HumanEval+ and MBPP+ the EvalPlus files the package ships in
`builder/data/benchmarks/` (a recipe names other copies in `sources`), for DS-1000 and LiveCodeBench their Hub datasets at a pinned commit.

`resolve` pins every benchmark before any work starts: a local file by its SHA-256, a Hub
dataset by its commit, after checking that it is there. A benchmark that cannot be found is an
error naming it, unless the recipe lists it as optional: then it is skipped, and the skip is
part of the stage's fingerprint (a later run that finds it is a new revision) and of its card.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from builder.data import BENCHMARKS_DIR
from builder.errors import StageError
from builder.stages.decontaminate.loaders import pieces_of
from builder.stages.decontaminate.matching import (
    MIN_PIECE_CHARS,
    Matcher,
    Piece,
    describe_matches,
    is_trivial,
    normalise,
)
from builder.stages.decontaminate.sources import Source, parse_source, pin, read_rows

__all__ = [
    "BENCHMARKS",
    "MIN_PIECE_CHARS",
    "Benchmark",
    "Matcher",
    "Piece",
    "Resolved",
    "describe_matches",
    "is_trivial",
    "load_pieces",
    "normalise",
    "resolve",
]

log = logging.getLogger(__name__)


SHIPPED = BENCHMARKS_DIR  # the EvalPlus files the package ships


@dataclass(frozen=True)
class Benchmark:
    name: str  # as written in recipes
    title: str
    kind: str  # the parser in loaders.PARSERS
    default_source: str
    hub_files: tuple[str, ...] = ()  # the files a bare `hub:repo@commit` source reads


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in [
        Benchmark(
            "humaneval+",
            "HumanEval+ (EvalPlus)",
            "humaneval",
            str(SHIPPED / "HumanEvalPlus-v0.1.9.jsonl.gz"),
        ),
        Benchmark("mbpp+", "MBPP+ (EvalPlus)", "mbpp", str(SHIPPED / "MbppPlus-v0.1.0.jsonl.gz")),
        Benchmark(
            "ds1000",
            "DS-1000",
            "ds1000",
            "hub:xlangai/DS-1000@4416080ac5cb80bdf7576aefb8f9a0b4d5426a44",
            ("test.jsonl",),
        ),
        Benchmark(
            # test.jsonl .. test6.jsonl together are release_v6 (problems up to 2025).
            "livecodebench",
            "LiveCodeBench (code generation, release_v6)",
            "livecodebench",
            "hub:livecodebench/code_generation_lite@0fe84c3912ea0c4d4a78037083943e8f0c4dd505",
            ("test.jsonl",) + tuple(f"test{i}.jsonl" for i in range(2, 7)),
        ),
    ]
}


@dataclass(frozen=True)
class Resolved:
    benchmark: Benchmark
    source: Source
    pin: str | None  # None: optional and not available
    reason: str = ""  # why it is not available

    @property
    def available(self) -> bool:
        return self.pin is not None


def check_names(names: list[str], sources: dict, optional: list[str]) -> str | None:
    """A problem with the benchmark names of a recipe, or None (no I/O)."""
    known = ", ".join(BENCHMARKS)
    for where, values in (
        ("benchmarks", names),
        ("sources", list(sources)),
        ("optional", optional),
    ):
        for value in values:
            if value not in BENCHMARKS:
                return f"{where}: unknown benchmark '{value}' (known: {known})"
    for value, spec in sources.items():
        if not isinstance(spec, str):
            return (
                f"sources.{value} must be a file path or hub:<owner>/<name>@<commit>, got {spec!r}"
            )
    return None


def resolve(names: list[str], sources: dict[str, str], optional: list[str]) -> list[Resolved]:
    """Pin every benchmark; StageError for one that is missing and not optional."""
    resolved = []
    for name in names:
        benchmark = BENCHMARKS[name]
        spec = sources.get(name) or benchmark.default_source
        source = parse_source(name, spec, benchmark.hub_files)  # a typo is never "unavailable"
        try:
            resolved.append(Resolved(benchmark, source, pin(name, source)))
        except StageError as err:
            if name in sources or benchmark.default_source.startswith("hub:"):
                message = str(err)
            else:
                message = (
                    f"{err} (the default; map {name} to its file in stages.decontaminate.sources)"
                )
            if name not in optional:
                raise StageError(message) from None
            log.warning("skipping optional benchmark: %s", message)
            resolved.append(Resolved(benchmark, source, None, message))
    return resolved


def load_pieces(item: Resolved) -> tuple[int, list[Piece]]:
    """(number of tasks, pieces) of an available benchmark."""
    tasks, pieces = pieces_of(
        item.benchmark.name, item.benchmark.kind, read_rows(item.benchmark.name, item.source)
    )
    if tasks == 0:
        raise StageError(f"benchmark '{item.benchmark.name}': {item.source.describe()} has no rows")
    return tasks, pieces
