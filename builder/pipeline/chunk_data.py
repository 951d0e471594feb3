"""The data a row stage's chunks carry, at the bottom of `pipeline/`: rows, dropped rows with
their reason, a chunk's result, a chunk's descriptor, and what a worker needs of a stage.

Everything above (checkpoints, inputs, executors, `RowStage`) imports these from here, so none
of them needs another to name a type.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

from builder.errors import StageError
from builder.pipeline.resources import Resources, WorkerResources

Row = dict[str, Any]

# Columns added to every rejected row.
DROP_REASON = "drop_reason"
DROP_DETAIL = "drop_detail"


def text_of(row: Row, column: str) -> str:
    """`row[column]` as text; a row without it is bad input, named in a one-line error."""
    text = row.get(column)
    if not isinstance(text, str):
        raise StageError(f"row {row.get('id')!r} has no {column} text ({column} = {text!r:.40})")
    return text


@dataclass
class Drop:
    row: Row
    reason: str
    detail: str = ""

    def as_row(self) -> Row:
        """The row as kept in the `rejected` split."""
        return {**self.row, DROP_REASON: self.reason, DROP_DETAIL: self.detail}


@dataclass
class ChunkResult:
    kept: list[Row] = field(default_factory=list)
    dropped: list[Drop] = field(default_factory=list)
    # Counts that are neither kept nor dropped rows (e.g. files with no function in them).
    stats: Counter = field(default_factory=Counter)


@dataclass(frozen=True)
class ChunkTask:
    """Chunk `index`: input rows `start` .. `stop - 1`, in input order."""

    index: int
    start: int
    stop: int
    refs: tuple = ()  # what the input needs to load these rows (file paths), if anything

    @property
    def rows(self) -> int:
        return self.stop - self.start


class ChunkProcessor(Protocol):
    """What a worker and an executor use of a row stage (`rows.RowStage` is one)."""

    name: str

    def attach(self, resources: WorkerResources) -> None: ...

    def process(self, rows: list[Row]) -> ChunkResult: ...

    def resources(self) -> Resources: ...

    def close(self) -> None: ...
