"""Chunk checkpoints: a stage's finished work, kept on disk until it is published.

Input rows are cut into fixed chunks (chunk i = rows i*K .. i*K+K-1 in input order). When a chunk
is done its kept rows, dropped rows and counts are written, the counts file last and by atomic
rename: that file is the proof the chunk is complete. After a crash or `kill -9`, a rerun skips
every chunk that has its proof and redoes at most the chunks that were in flight.
The folder is named by the stage's fingerprint, so work done under other parameters or another
input revision is never mixed in. Workers write their chunks' files here from any process or
machine that can reach the folder; nothing here assumes they share the driver's process.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from builder.errors import StageError
from builder.pipeline.chunk_data import ChunkResult, Row
from builder.pipeline.shards import iter_parquet_rows, parquet_num_rows, tmp_path_for, write_rows

log = logging.getLogger(__name__)


class Checkpoint:
    def __init__(self, folder: Path):
        self.folder = folder
        self.chunks = folder / "chunks"
        self.chunks.mkdir(parents=True, exist_ok=True)

    def done_chunks(self) -> set[int]:
        """Chunks with their proof, and with every rows file the proof counts on, whole. A
        chunk whose files are damaged (a garbled proof, a truncated parquet file: a disk
        error, a copy cut short) is named in a warning, removed and done again."""
        done = set()
        for proof in sorted(self.chunks.glob("*.json")):
            if not proof.stem.isdigit():
                continue
            index = int(proof.stem)
            problem = self._damage(index)
            if problem is None:
                done.add(index)
            elif problem:
                log.warning(
                    "checkpoint of chunk %d is damaged (%s): doing it again", index, problem
                )
                for path in self._paths(index):
                    path.unlink(missing_ok=True)
        return done

    def is_done(self, index: int) -> bool:
        """Whether chunk `index` has its proof and every rows file it counts on, whole."""
        return self._paths(index)[2].exists() and self._damage(index) is None

    def _damage(self, index: int) -> str | None:
        """What is wrong with chunk `index`'s files; "" if only a rows file is missing (lost
        since, e.g. a power cut before the page cache was written: redone silently)."""
        kept_path, dropped_path, proof = self._paths(index)
        try:
            counts = json.loads(proof.read_text())
            expected = {kept_path: counts["kept"], dropped_path: sum(counts["drops"].values())}
        except (ValueError, KeyError, TypeError, AttributeError):
            return f"{proof.name} is not a proof"
        for path, rows in expected.items():
            if not rows:
                continue
            if not path.exists():
                return ""
            try:
                found = parquet_num_rows(path)
            except Exception as err:  # noqa: BLE001  # pyarrow's errors for a broken file vary
                return f"{path.name}: {str(err).splitlines()[0][:100]}"
            if found != rows:
                return f"{path.name} holds {found} rows, its proof says {rows}"
            digest = counts.get("sha256", {}).get(path.name)
            if digest is not None and _sha256(path) != digest:
                return f"{path.name} differs from what was written (SHA-256)"
        return None

    @contextmanager
    def locked(self):
        """Held by the driver for a whole stage run: two runs of one stage would delete each
        other's work. Workers never take it: they write only their own chunks' files."""
        with open(self.folder / ".lock", "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StageError(f"another run is working in {self.folder}; wait for it") from None
            try:
                yield self
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def save(self, index: int, result: ChunkResult, rows_in: int, worker: str = "") -> None:
        """Write chunk `index` and its proof. `worker` says where it ran (host:pid)."""
        kept_path, dropped_path, _ = self._paths(index)
        write_rows(kept_path, result.kept)
        write_rows(dropped_path, [d.as_row() for d in result.dropped])
        counts = {
            "rows_in": rows_in,
            "kept": len(result.kept),
            "drops": dict(Counter(d.reason for d in result.dropped)),
            "stats": dict(result.stats),
            "worker": worker,
            # what the files held when written: a resume refuses a file changed since
            "sha256": {p.name: _sha256(p) for p in (kept_path, dropped_path) if p.exists()},
        }
        _atomic_json(self._paths(index)[2], counts)

    def counts(self, index: int) -> dict:
        return json.loads(self._paths(index)[2].read_text())

    def iter_kept(self, indices: list[int]) -> Iterator[Row]:
        yield from iter_parquet_rows([p for i in indices if (p := self._paths(i)[0]).exists()])

    def iter_dropped(self, indices: list[int]) -> Iterator[Row]:
        yield from iter_parquet_rows([p for i in indices if (p := self._paths(i)[1]).exists()])

    def publish_folder(self) -> Path:
        """A clean folder for the shards, card and manifest of the publish."""
        folder = self.folder / "publish"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        return folder

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def _paths(self, index: int) -> tuple[Path, Path, Path]:
        stem = self.chunks / f"{index:07d}"
        return (
            stem.with_suffix(".kept.parquet"),
            stem.with_suffix(".dropped.parquet"),
            stem.with_suffix(".json"),
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _atomic_json(path: Path, data: dict) -> None:
    tmp = tmp_path_for(path)
    with open(tmp, "w") as handle:
        json.dump(data, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
