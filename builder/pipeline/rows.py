"""Row stages: the steps that turn rows into rows, with declared columns.

A row stage is a pure transform. An executor feeds `process` chunks of input rows, in worker
processes or on other machines, and each chunk's kept rows, dropped rows (with a reason) and
counts are checkpointed; once every chunk is done, the stage may make one global pass over the
kept rows (`finalize`, e.g. exact dedup across chunks). The runner checks `reads` against the
input's columns before any work starts, and `adds` against each output row. The output is a
dataset: `data/train-*.parquet` (kept), `rejected/rejected-*.parquet` (every dropped row with
`drop_reason` and `drop_detail`), a card and a manifest.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from builder.errors import StageError
from builder.pipeline.card import render_card
from builder.pipeline.resources import Resources
from builder.pipeline.shards import Row
from builder.pipeline.step import Step, StepRun

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


class RowStage(Step):
    adds: ClassVar[tuple[str, ...]] = ()
    # Input rows per checkpointed chunk: the most work a crash can lose.
    chunk_size: ClassVar[int] = 1000

    def __init__(self, params, context=None):
        super().__init__(params, context)
        if params.chunk_size is not None:  # the recipe's, instead of the class's default
            self.chunk_size = params.chunk_size

    def rows_out(self, rows_in: int) -> int | None:
        """How many rows (kept plus dropped) `rows_in` input rows must give: the runner refuses
        to publish anything else (rows vanished or appeared unaccounted). None: not fixed
        (e.g. a file gives any number of functions)."""
        return rows_in

    def num_proc(self) -> int:
        """Worker processes for `process`; 1 runs chunks in the driver's own process."""
        return 1

    def resources(self) -> Resources:
        return Resources(workers=max(1, self.num_proc()))

    def process(self, rows: list[Row]) -> ChunkResult:
        raise NotImplementedError

    def survey(self, rows: Iterable[Row]) -> None:
        """A first ordered pass over every kept row, before `finalize`, for a stage that needs
        figures over all of them (e.g. per group) to write each row. Called only when a stage
        overrides it; it costs one more read of the checkpointed rows."""

    def finalize(self, rows: Iterable[Row]) -> Iterator[Row | Drop]:
        """One ordered pass over every kept row after all chunks are done. Default: keep all."""
        yield from rows

    def card_notes(self) -> str:
        """Extra markdown for the dataset card (method details a reader needs)."""
        return ""

    def rows_follow(self) -> str | None:
        """The recipe step whose rows this one's output count follows, when it is not its own
        input's (one row per task: `select`'s follow the instructions, not the samples);
        `builder plan` scales by it. None: its own input."""
        return None

    def figures(self) -> list[dict]:
        """Figures over every row, gathered in `survey`/`finalize`: published in the manifest
        (`figures`), in the card and in the Space. Each is a table {"title", "headers",
        "rows"} or an example {"title", "caption", "blocks": [{"label", "language", "text"}]}
        (blocks may hold model text: cards fence them, the Space escapes them), optionally with
        a "note"."""
        return []

    def run(self, job: StepRun) -> dict[str, Any]:
        from builder.pipeline.chunks import run_row_stage  # chunks imports this module

        return run_row_stage(self, job)

    def card(self, manifest: dict[str, Any]) -> str:
        return render_card(manifest, self.card_notes())

    def commit_title(self, manifest: dict[str, Any], source: str) -> str:
        return f"{self.name}: {manifest['rows_out']} rows from {source}"

    def summary(self, manifest: dict[str, Any]) -> str:
        rejected = manifest["splits"]["rejected"]["rows"]
        return f"{manifest['rows_in']} rows in, {manifest['rows_out']} kept, {rejected} dropped"
