"""Parquet shards and manifests: how a stage's rows are laid out in a repository.

A published revision holds `data/train-XXXXX-of-YYYYY.parquet` (kept rows),
`rejected/rejected-XXXXX-of-YYYYY.parquet` (dropped rows with `drop_reason` and `drop_detail`),
`README.md` (the card) and `manifest.json` (lineage and counts, for machines).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from builder.store import Store

Row = dict[str, Any]

SPLIT_DIRS = {"train": "data", "rejected": "rejected"}
# Rows per parquet row group: a reader of one chunk, or of one page in the Space, decodes a
# few thousand rows, not a whole shard (the Hub's viewer pages by row group too).
ROW_GROUP_ROWS = 1000


def split_files(
    store: Store, repo: str, revision: str, split: str, manifest: dict | None
) -> list[str]:
    """The parquet files of a split: as the revision's manifest lists them, or, for a dataset
    not made by us (no manifest), every parquet file under the split's folder."""
    if manifest is not None:
        return manifest["splits"].get(split, {}).get("files", [])
    prefix = "data/" if split == "train" else f"{split}/"
    return [
        f
        for f in store.list_files(repo, revision)
        if f.startswith(prefix) and f.endswith(".parquet")
    ]


def iter_parquet_rows(paths: list[Path], batch_size: int = 1024) -> Iterator[Row]:
    import pyarrow.parquet as pq

    for path in paths:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size):
            yield from batch.to_pylist()


def parquet_columns(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    return list(pq.read_schema(path).names)


def parquet_num_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def read_row_range(path: Path, first: int, count: int) -> list[Row]:
    """Rows first .. first+count-1 of a parquet file, decoding only the row groups that hold
    them (our shards have row groups of ROW_GROUP_ROWS rows)."""
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    rows: list[Row] = []
    position = 0
    for group in range(parquet.num_row_groups):
        size = parquet.metadata.row_group(group).num_rows
        lo, hi = max(first, position), min(first + count, position + size)
        if lo < hi:
            table = parquet.read_row_group(group)
            rows += table.slice(lo - position, hi - lo).to_pylist()
        position += size
        if position >= first + count:
            break
    return rows


def tmp_path_for(path: Path) -> Path:
    """A temporary name beside `path`, unique to this process on this machine: two workers that
    write the same file on a shared filesystem (a chunk retried while its first worker is still
    alive) each rename a whole file of their own."""
    return path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.tmp")


def write_rows(path: Path, rows: list[Row]) -> None:
    """Write rows as one parquet file, atomically and durably (on disk before anything that
    names it is written); no rows: no file (a stale one is removed)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not rows:
        path.unlink(missing_ok=True)
        return
    tmp = tmp_path_for(path)
    pq.write_table(pa.Table.from_pylist(rows), tmp)
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class ShardWriter:
    """Writes rows into numbered parquet shards of at most `rows_per_shard` rows.

    The final names (`-XXXXX-of-YYYYY`) are only known at the end, and every shard of a split
    must share one schema for the Hub's viewer and `datasets`; `finish` unifies the schemas
    (a column that is all null in one shard gets the type it has in the others) and renames.
    """

    def __init__(self, folder: Path, split: str, rows_per_shard: int = 100_000):
        self.folder = folder / SPLIT_DIRS[split]
        self.folder.mkdir(parents=True, exist_ok=True)
        self.split = split
        self.rows_per_shard = rows_per_shard
        self.buffer: list[Row] = []
        self.parts: list[Path] = []
        self.rows = 0

    def write(self, row: Row) -> None:
        self.buffer.append(row)
        self.rows += 1
        if len(self.buffer) >= self.rows_per_shard:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.buffer:
            return
        part = self.folder / f".part-{len(self.parts):05d}.parquet"
        pq.write_table(pa.Table.from_pylist(self.buffer), part, row_group_size=ROW_GROUP_ROWS)
        self.parts.append(part)
        self.buffer = []

    def finish(self, empty_columns: tuple[str, ...] = ()) -> list[Path]:
        """Close the split; returns its shard files in order. A split with no rows has no
        shard, unless `empty_columns` are given: then one empty shard with those columns, so
        that the dataset still loads (as an empty split)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._flush()
        if not self.parts and empty_columns:
            part = self.folder / ".part-00000.parquet"
            pq.write_table(pa.table({c: pa.array([], pa.null()) for c in empty_columns}), part)
            self.parts.append(part)
        schemas = [pq.read_schema(p) for p in self.parts]
        unified = pa.unify_schemas(schemas, promote_options="permissive") if schemas else None
        final = []
        for index, (part, schema) in enumerate(zip(self.parts, schemas)):
            name = f"{self.split}-{index:05d}-of-{len(self.parts):05d}.parquet"
            target = self.folder / name
            if schema.equals(unified):
                os.replace(part, target)
            else:
                table = pq.read_table(part)
                columns = [
                    table[f.name].cast(f.type)
                    if f.name in table.column_names
                    else pa.nulls(len(table), f.type)
                    for f in unified
                ]
                table = pa.Table.from_arrays(columns, schema=unified)
                pq.write_table(table, target, row_group_size=ROW_GROUP_ROWS)
                part.unlink()
            final.append(target)
        return final
