"""Pages of a published split, read by parquet row group: a stage of millions of rows opens as
fast as one of ten, and never sits in memory.

Opening a split reads each shard's footer (row counts per row group); a page decodes only the
row groups that hold its rows (our shards have row groups of 1,000 rows, `ROW_GROUP_ROWS`). On
the Hub the files are read by byte ranges (`Store.open_file`), so a page costs its row groups'
bytes, not the shards'.

Search scans row group by row group, decoding only the text columns searched, and stops at a
page of matches; the next page of matches continues where the last one stopped. It is a
substring match (case-insensitive) on string columns; list columns (`concepts`, `messages`)
are not searched. A scan may stop early at a time budget and say how far it got.
"""

from __future__ import annotations

import json
import threading
import time
from bisect import bisect_right
from dataclasses import dataclass, field

from builder.errors import StoreError
from builder.pipeline.shards import split_files
from builder.store import Store

CELL_CHARS = 160  # a table cell shows this much of a long text; the row view shows all


@dataclass
class SearchResult:
    rows: list[tuple[int, dict]] = field(default_factory=list)  # (row index, row)
    next_row: int | None = None  # where the next page of matches starts; None: scan finished
    scanned_to: int = 0  # rows before this index have been searched


class SplitPages:
    """One split of one revision (`manifest`: the revision's, or None for a dataset not made by
    this tool). Thread-safe: a Gradio server calls it from several threads."""

    def __init__(self, store: Store, repo: str, commit: str, split: str, manifest: dict | None):
        self.store, self.repo, self.commit, self.split = store, repo, commit, split
        self.files = split_files(store, repo, commit, split, manifest)
        self._lock = threading.Lock()
        self._parquet: dict[int, object] = {}
        self.groups: list[tuple[int, int]] = []  # (file index, row group index), in row order
        self.starts: list[int] = []  # first row index of each group
        total = 0
        for index in range(len(self.files)):
            metadata = self._file(index).metadata
            for group in range(metadata.num_row_groups):
                rows = metadata.row_group(group).num_rows
                if rows:
                    self.groups.append((index, group))
                    self.starts.append(total)
                    total += rows
        self.num_rows = total
        self.columns = list(self._file(0).schema_arrow.names) if self.files else []
        self.text_columns = (
            [f.name for f in self._file(0).schema_arrow if _is_text(f.type)] if self.files else []
        )

    def _file(self, index: int):
        import pyarrow.parquet as pq

        if index not in self._parquet:
            handle = self.store.open_file(self.repo, self.commit, self.files[index])
            self._parquet[index] = pq.ParquetFile(handle)
        return self._parquet[index]

    def _read_group(self, position: int, columns: list[str] | None = None):
        index, group = self.groups[position]
        with self._lock:
            try:
                return self._file(index).read_row_group(group, columns=columns)
            except OSError as err:  # a range read that failed (network, a file gone)
                raise StoreError(f"cannot read {self.repo}@{self.commit[:12]}: {err}") from None

    def rows(self, first: int, count: int) -> list[tuple[int, dict]]:
        """Rows first .. first+count-1 (fewer at the end), with their indices."""
        out: list[tuple[int, dict]] = []
        first = max(0, first)
        position = bisect_right(self.starts, first) - 1
        while position >= 0 and position < len(self.groups) and len(out) < count:
            start = self.starts[position]
            table = self._read_group(position)
            lo = max(first, start) - start
            for offset, row in enumerate(table.slice(lo, count - len(out)).to_pylist()):
                out.append((start + lo + offset, row))
            position += 1
        return out

    def row(self, index: int) -> dict:
        found = self.rows(index, 1)
        if not found or found[0][0] != index:
            raise StoreError(f"no row {index} in {self.repo} ({self.split}: {self.num_rows} rows)")
        return found[0][1]

    def search(
        self,
        query: str,
        columns: list[str] | None = None,
        start: int = 0,
        want: int = 25,
        budget_s: float | None = None,
    ) -> SearchResult:
        """Up to `want` rows from `start` on whose text columns contain `query`."""
        import pyarrow.compute as pc

        columns = [c for c in (columns or self.text_columns) if c in self.text_columns]
        result = SearchResult(next_row=None, scanned_to=self.num_rows)
        if not columns or not query:
            return result
        began = time.monotonic()
        first = max(0, bisect_right(self.starts, start) - 1)
        for position in range(first, len(self.groups)):
            group_start = self.starts[position]
            table = self._read_group(position, columns)
            mask = None
            for column in columns:
                found = pc.fill_null(
                    pc.match_substring(table[column], query, ignore_case=True), False
                )
                mask = found if mask is None else pc.or_(mask, found)
            offsets = [i for i in pc.indices_nonzero(mask).to_pylist() if group_start + i >= start]
            if offsets:
                full = self._read_group(position)
                for offset in offsets[: want - len(result.rows)]:
                    result.rows.append((group_start + offset, full.slice(offset, 1).to_pylist()[0]))
                if len(result.rows) >= want:
                    last = result.rows[-1][0]
                    result.next_row = last + 1 if last + 1 < self.num_rows else None
                    result.scanned_to = last + 1
                    return result
            group_end = group_start + table.num_rows
            if budget_s is not None and time.monotonic() - began > budget_s:
                if group_end < self.num_rows:
                    result.next_row = result.scanned_to = group_end
                return result
        return result

    def find(self, column: str, value) -> tuple[int, dict] | None:
        """The first row whose `column` equals `value` (reads that column, then one row)."""
        import pyarrow.compute as pc

        if column not in self.columns or value is None:
            return None
        for position in range(len(self.groups)):
            keys = self._read_group(position, [column])[column]
            try:
                hits = pc.indices_nonzero(pc.fill_null(pc.equal(keys, value), False)).to_pylist()
            except Exception:  # noqa: BLE001 - a value of another type than the column's
                return None
            if hits:
                index = self.starts[position] + hits[0]
                return index, self.row(index)
        return None

    def close(self) -> None:
        with self._lock:
            for parquet in self._parquet.values():
                parquet.close()
            self._parquet.clear()


def _is_text(kind) -> bool:
    import pyarrow as pa

    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def cell(value) -> str:
    """A value as a table cell: text cut to CELL_CHARS, lists and dicts as JSON."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…"
