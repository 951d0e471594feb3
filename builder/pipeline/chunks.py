"""Running a row stage: its input cut into chunks, the chunks run by an executor, then the
stage's global pass and the output shards.

The input gives chunk descriptors (`InputSource.tasks`); chunks already checkpointed are
skipped, the others go to the executor, which runs them wherever it runs workers; each worker
checkpoints its own results. Then the kept rows of every chunk, in input order, go through the
stage's `finalize`, and the kept and dropped rows are written as the dataset's shards.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from builder.errors import StageError
from builder.pipeline.checkpoint import Checkpoint
from builder.pipeline.executors.base import ChunkTask, Executor, RowJob
from builder.pipeline.rows import Drop, RowStage
from builder.pipeline.shards import ShardWriter, parquet_columns
from builder.pipeline.step import StepRun

log = logging.getLogger(__name__)


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
    stage: RowStage, source, checkpoint: Checkpoint, executor: Executor
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
    if getattr(type(stage), "survey", RowStage.survey) is not RowStage.survey:
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
