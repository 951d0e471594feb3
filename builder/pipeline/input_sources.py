"""Inputs a step can read: a store revision, a Hub dataset, a model (and, in `folder_input.py`, a
local directory of `.py` files).

Each input has a `ref` that pins what was read (a commit id, or a digest of a directory's
listing) and goes into the stage's fingerprint and card, and yields rows in a fixed order so that
a resumed run cuts the same chunks as the run it resumes.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from pathlib import Path

from builder.engines.model import public_name, resolve_model
from builder.errors import StageError
from builder.pipeline.chunk_data import ChunkTask, Row
from builder.pipeline.publish import read_manifest
from builder.pipeline.shards import (
    iter_parquet_rows,
    parquet_columns,
    parquet_num_rows,
    read_row_range,
    split_files,
    write_rows,
)
from builder.store import Store

log = logging.getLogger(__name__)


class InputSource:
    """A pinned input. Its rows are read in chunks, by descriptors: `tasks` cuts them (in the
    driver), `load` reads one chunk's rows (in whichever worker processes it). A source is
    picklable: it travels to the workers with the stage."""

    ref: dict  # {"kind", "repo" or "path", "revision"}: pins what was read
    columns: list[str]
    num_rows: int | None = None

    def iter_rows(self) -> Iterator[Row]:
        raise NotImplementedError

    def tasks(self, chunk_size: int, limit: int | None, spool: Path) -> Iterator[ChunkTask]:
        """Descriptors of consecutive chunks of `chunk_size` rows (the first `limit` rows).
        By default the rows are read here and spooled as one parquet file per chunk under
        `spool` (a work folder every worker can reach): for inputs that can only be streamed.
        Inputs that can address their rows (files, a store revision) override this."""
        rows = self.iter_rows()
        if limit is not None:
            rows = itertools.islice(rows, limit)
        start = 0
        for index, chunk in enumerate(_batched(rows, chunk_size)):
            path = spool / f"{index:07d}.parquet"
            if not path.exists():
                spool.mkdir(parents=True, exist_ok=True)
                write_rows(path, chunk)
            yield ChunkTask(index, start, start + len(chunk), (str(path),))
            start += len(chunk)

    def load(self, task: ChunkTask) -> list[Row]:
        """The rows of one chunk (runs in the worker)."""
        return list(iter_parquet_rows([Path(task.refs[0])]))

    def describe(self) -> str:
        return f"{self.ref.get('repo') or self.ref.get('path')}@{self.ref['revision']}"


class StoreInput(InputSource):
    """The `train` split of a revision in the store (normally another stage's output)."""

    def __init__(self, store: Store, repo: str, revision: str, split: str = "train"):
        self.store = store
        self.repo = repo
        self.revision = store.resolve(repo, revision)  # a commit id, never a moving branch
        self.ref = {"kind": "store", "repo": repo, "revision": self.revision}
        manifest = read_manifest(store, repo, self.revision)
        self.files = split_files(store, repo, self.revision, split, manifest)
        if manifest is not None:
            self.num_rows = manifest["splits"].get(split, {"rows": 0})["rows"]
            self.columns = manifest.get("columns", {}).get(split, [])
        else:  # a dataset not made by us: its columns are those of its first shard
            if not self.files:
                raise StageError(f"{repo}@{self.revision} has no parquet files for split {split}")
            first = store.fetch(repo, self.revision, self.files[:1])[self.files[0]]
            self.columns = parquet_columns(first)

    def iter_rows(self) -> Iterator[Row]:
        if not self.files:
            return iter(())
        local = self.store.fetch(self.repo, self.revision, self.files)
        return iter_parquet_rows([local[f] for f in self.files])

    def tasks(self, chunk_size: int, limit: int | None, spool: Path) -> Iterator[ChunkTask]:
        """Row ranges; each descriptor names its pieces of files (repo path, local copy,
        first row, rows), so a worker reads only its rows' row groups."""
        if not self.files:
            return
        local = self.store.fetch(self.repo, self.revision, self.files)
        sizes = [(f, str(local[f]), parquet_num_rows(local[f])) for f in self.files]
        total = sum(n for _, _, n in sizes)
        total = total if limit is None else min(limit, total)
        for index, start in enumerate(range(0, total, chunk_size)):
            stop = min(start + chunk_size, total)
            yield ChunkTask(index, start, stop, _pieces(sizes, start, stop))

    def load(self, task: ChunkTask) -> list[Row]:
        rows: list[Row] = []
        for name, path, first, count in task.refs:
            if not Path(path).is_file():  # another machine: its own copy from the store
                path = self.store.fetch(self.repo, self.revision, [name])[name]
            rows += read_row_range(Path(path), first, count)
        return rows


class ModelInput(InputSource):
    """A model, pinned: a Hub id or a local folder (`engines.model.resolve_model`), or a model
    repository of the store (`path`: a local folder with its files)."""

    columns: list[str] = []

    def __init__(
        self,
        name: str,
        revision: str | None,
        path: str | None = None,
        branch: str | None = None,
        work_dir: str | None = None,  # where a GGUF file's converted folder goes
        origin: str | None = None,  # the model a GGUF file was made from (recipe.model_origin)
    ):
        ref = resolve_model(path or name, revision, work_dir, origin)
        self.name, self.revision = public_name(name), ref.revision
        # what from_pretrained reads: a GGUF file's converted folder, else as given
        self.path = ref.name if ref.source is not None else path or name
        self.branch = branch or revision or "main"  # the revision as asked (e.g. step-000500)
        self.source = ref.source
        self.ref = {"kind": "model", "repo": self.name, "revision": ref.revision}
        if ref.source is not None:
            self.ref["gguf"] = ref.source


def _pieces(sizes: list[tuple[str, str, int]], start: int, stop: int) -> tuple:
    """(repo path, local path, first row, rows) of each file that holds rows start..stop-1."""
    pieces, offset = [], 0
    for name, path, rows in sizes:
        lo, hi = max(start, offset), min(stop, offset + rows)
        if lo < hi:
            pieces.append((name, path, lo - offset, hi - lo))
        offset += rows
    return tuple(pieces)


def _batched(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
    while chunk := list(itertools.islice(rows, size)):
        yield chunk


class HubDatasetInput(InputSource):
    """A Hub dataset, streamed with `datasets` at a pinned commit (e.g. The Stack)."""

    def __init__(self, repo: str, data_dir: str | None, split: str, revision: str | None):
        from huggingface_hub import HfApi
        from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

        try:
            self.revision = HfApi().dataset_info(repo, revision=revision).sha
        except (RepositoryNotFoundError, RevisionNotFoundError):
            raise StageError(
                f"Hub dataset '{repo}' (revision {revision or 'main'}) not found"
            ) from None
        except Exception as err:  # no network, bad endpoint
            raise StageError(
                f"cannot open Hub dataset '{repo}': {str(err).splitlines()[0]}"
            ) from None
        self.repo, self.data_dir, self.split = repo, data_dir, split
        self.ref = {"kind": "hub", "repo": repo, "revision": self.revision, "data_dir": data_dir}
        self.dataset = self._load()
        features = self.dataset.features
        self.columns = list(features) if features is not None else list(next(iter(self.dataset)))

    def _load(self):
        from datasets import load_dataset

        return load_dataset(
            self.repo,
            data_dir=self.data_dir,
            split=self.split,
            revision=self.revision,
            streaming=True,
        )

    def iter_rows(self) -> Iterator[Row]:
        return iter(self.dataset)
