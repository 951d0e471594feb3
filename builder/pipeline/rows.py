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

import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

from tqdm.auto import tqdm

from builder.errors import StageError
from builder.pipeline.checkpoint import Checkpoint
from builder.pipeline.chunk_data import (  # noqa: F401  (stages import these names from here)
    DROP_DETAIL,
    DROP_REASON,
    ChunkResult,
    ChunkTask,
    Drop,
    Row,
    text_of,
)
from builder.pipeline.dataset_card import render_card
from builder.pipeline.executors.base import Executor, RowJob
from builder.pipeline.input_sources import InputSource
from builder.pipeline.resources import Resources
from builder.pipeline.shards import ShardWriter, parquet_columns
from builder.pipeline.step import Step, StepRun

log = logging.getLogger(__name__)


class RowStage(Step):
    adds: ClassVar[tuple[str, ...]] = ()
    # Input rows per checkpointed chunk: the most work a crash can lose.
    chunk_size: int | None = 1000

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

    def figures(self) -> list[dict]:
        """Figures over every row, gathered in `survey`/`finalize`: published in the manifest
        (`figures`), in the card and in the Space. Each is a table {"title", "headers",
        "rows"} or an example {"title", "caption", "blocks": [{"label", "language", "text"}]}
        (blocks may hold model text: cards fence them, the Space escapes them), optionally with
        a "note"."""
        return []

    def run(self, job: StepRun) -> dict[str, Any]:
        return run_row_stage(self, job)

    def card(self, manifest: dict[str, Any]) -> str:
        return render_card(manifest, self.card_notes())

    def commit_title(self, manifest: dict[str, Any], source: str) -> str:
        return f"{self.name}: {manifest['rows_out']} rows from {source}"

    def summary(self, manifest: dict[str, Any]) -> str:
        rejected = manifest["splits"]["rejected"]["rows"]
        return f"{manifest['rows_in']} rows in, {manifest['rows_out']} kept, {rejected} dropped"


# Running a row stage: its input cut into chunks, the chunks run by an executor (chunks already
# checkpointed are skipped; each worker checkpoints its own results), then the stage's global
# pass over the kept rows in input order, and the dataset's shards.


def run_row_stage(stage: RowStage, job: StepRun) -> dict[str, Any]:
    """Process every chunk, finalize and write the shards; returns the manifest's facts."""
    checkpoint = Checkpoint(job.work)
    started = time.monotonic()
    indices = process_chunks(stage, job.source, checkpoint, job.executor)
    processed = time.monotonic()
    facts = write_outputs(stage, checkpoint, indices, job.output)
    facts["timings"] = {  # of this attempt: chunks done before a resume are not counted
        "process_s": round(processed - started, 2),
        "finalize_s": round(time.monotonic() - processed, 2),
    }
    return facts


def process_chunks(
    stage: RowStage, source: InputSource, checkpoint: Checkpoint, executor: Executor
) -> list[int]:
    """Process every chunk not yet checkpointed; returns the indices of all chunks, in order."""
    limit = stage.params.limit
    total = source.num_rows if limit is None else min(limit, source.num_rows or limit)
    done = checkpoint.done_chunks()
    if done:
        log.info("%s: resuming, %d chunks already done", stage.name, len(done))
    indices: list[int] = []
    bar = tqdm(total=total, desc=stage.name, unit="row", dynamic_ncols=True, mininterval=1.0)

    def pending() -> Iterator[ChunkTask]:
        for task in source.tasks(stage.chunk_size, limit, checkpoint.folder / "inputs"):
            indices.append(task.index)
            if task.index in done:
                bar.update(task.rows)
                _remove_spooled(task, checkpoint.folder)
                continue
            yield task

    def on_done(task: ChunkTask) -> None:
        bar.update(task.rows)
        _remove_spooled(task, checkpoint.folder)

    try:
        executor.run(RowJob(stage, source, checkpoint.folder), pending(), on_done)
    finally:
        stage.close()
        bar.close()
    reused = len(done & set(indices))
    log.info(
        "%s: %d chunks processed, %d reused from an earlier run",
        stage.name,
        len(indices) - reused,
        reused,
    )
    return indices


def _remove_spooled(task: ChunkTask, folder: Path) -> None:
    """A chunk's spooled input rows are not needed once its results are checkpointed."""
    spool = folder / "inputs"
    for ref in task.refs:
        if isinstance(ref, str) and Path(ref).parent == spool:
            Path(ref).unlink(missing_ok=True)


def write_outputs(
    stage: RowStage, checkpoint: Checkpoint, indices: list[int], folder: Path
) -> dict[str, Any]:
    counts = [checkpoint.counts(i) for i in indices]
    drops, stats = Counter(), Counter()
    for chunk in counts:  # update, not +: a Counter sum would lose counts of zero
        drops.update(chunk["drops"])
        stats.update(chunk["stats"])
    train, rejected = ShardWriter(folder, "train"), ShardWriter(folder, "rejected")
    adds = set(stage.adds)
    if type(stage).survey is not RowStage.survey:
        stage.survey(checkpoint.iter_kept(indices))  # only a stage that needs the extra read
    for item in stage.finalize(checkpoint.iter_kept(indices)):
        if isinstance(item, Drop):
            rejected.write(item.as_row())
            drops[item.reason] += 1
            continue
        if not adds <= item.keys():
            missing = sorted(adds - item.keys())
            raise StageError(f"stage '{stage.name}' output lacks columns {missing}")
        train.write(item)
    for row in checkpoint.iter_dropped(indices):
        rejected.write(row)
    figures = stage.figures()  # after finalize: figures over every row it saw
    splits = {}
    for writer in (train, rejected):
        # The kept rows are the dataset's default config: it exists even when empty.
        files = writer.finish(empty_columns=tuple(stage.adds) if writer is train else ())
        splits[writer.split] = {
            "rows": writer.rows,
            "files": [str(f.relative_to(folder)) for f in files],
        }
    rows_in = sum(c["rows_in"] for c in counts)
    expected = stage.rows_out(rows_in)
    if expected is not None and train.rows + rejected.rows != expected:
        raise StageError(
            f"stage '{stage.name}': {rows_in} rows in should give {expected} rows, but "
            f"{train.rows} were kept and {rejected.rows} dropped; nothing published"
        )
    columns = {
        s: parquet_columns(folder / e["files"][0]) if e["files"] else [] for s, e in splits.items()
    }
    return {
        "splits": splits,
        "columns": columns,
        "rows_in": rows_in,
        "rows_out": train.rows,
        "drops": dict(sorted(drops.items())),
        "stats": dict(sorted(stats.items())),
        **({"figures": figures} if figures else {}),
    }
