"""Where a benchmark is read from, pinned: a local file, or files of a Hub dataset at a commit.

A source is written in the recipe as one string:

- a local file path (`.jsonl`, `.jsonl.gz`, `.json`, `.parquet`), relative to the working
  directory; pinned by the SHA-256 of its bytes;
- `hub:<owner>/<name>@<40-hex commit>` for the benchmark's usual files in that dataset, or
  `hub:<owner>/<name>@<commit>:<file>,<file>` to name them; pinned by the commit. A branch or
  tag is refused: it can move, and the stage's fingerprint would not see it move.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from builder.errors import StageError

log = logging.getLogger(__name__)

_HUB = re.compile(r"^hub:(?P<repo>[\w.-]+/[\w.-]+)@(?P<revision>[0-9a-f]{40})(?::(?P<files>.+))?$")
_READABLE = (".jsonl", ".jsonl.gz", ".json", ".parquet")


@dataclass(frozen=True)
class Source:
    spec: str
    path: Path | None = None  # a local file
    repo: str | None = None  # a Hub dataset
    revision: str | None = None
    files: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.path is not None:
            return str(self.path)
        return f"{self.repo}@{self.revision[:12]} ({', '.join(self.files)})"


def parse_source(name: str, spec: str, default_files: tuple[str, ...]) -> Source:
    """Check a source's syntax (no I/O); raises StageError naming the benchmark."""
    if spec.startswith("hub:"):
        match = _HUB.match(spec)
        if match is None:
            raise StageError(
                f"benchmark '{name}': bad Hub source '{spec}': write hub:<owner>/<name>@<40-hex commit>"
                "[:<file>,<file>] (a commit id, not a branch or tag)"
            )
        files = (
            tuple(f.strip() for f in match["files"].split(",")) if match["files"] else default_files
        )
        if not files:
            raise StageError(
                f"benchmark '{name}': Hub source '{spec}' must name its files (…:<file>,<file>)"
            )
        return Source(spec, repo=match["repo"], revision=match["revision"], files=files)
    if not spec.endswith(_READABLE):
        raise StageError(
            f"benchmark '{name}': cannot read '{spec}': expected a {', '.join(_READABLE)} file or hub:..."
        )
    return Source(spec, path=Path(spec).expanduser())


def pin(name: str, source: Source) -> str:
    """What the stage's fingerprint records; raises StageError if the source is not there."""
    if source.path is not None:
        return f"{source.path.name} sha256:{_file_digest(name, source.path)[:16]}"
    _check_hub(name, source)
    return f"hub:{source.repo}@{source.revision}"


def read_rows(name: str, source: Source) -> Iterator[dict]:
    """The benchmark's rows, in file order."""
    paths = [source.path] if source.path is not None else _download(name, source)
    for path in paths:
        try:
            yield from _rows_of(path)
        except (OSError, EOFError, ValueError, UnicodeDecodeError) as err:
            message = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise StageError(f"benchmark '{name}': cannot read {path}: {message}") from None


def _file_digest(name: str, path: Path) -> str:
    if not path.is_file():
        raise StageError(f"benchmark '{name}': file not found: {path}")
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as err:
        raise StageError(f"benchmark '{name}': cannot read {path}: {err.strerror or err}") from None
    return digest.hexdigest()


def _rows_of(path: Path) -> Iterator[dict]:
    name = path.name
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=256):
            yield from batch.to_pylist()
        return
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        if name.endswith(".json"):
            data = json.load(handle)
            yield from data if isinstance(data, list) else data.values()
            return
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f"line {number} is not JSON ({err.msg})") from None


def _check_hub(name: str, source: Source) -> None:
    """The dataset and commit exist (one metadata call; files are downloaded when read)."""
    from huggingface_hub import HfApi

    try:
        info = HfApi().dataset_info(source.repo, revision=source.revision, files_metadata=False)
    except Exception as err:  # noqa: BLE001 - offline, not found, no access: all "not available"
        raise StageError(
            f"benchmark '{name}': cannot reach Hub dataset {source.repo}@{source.revision}: "
            f"{_first_line(err)}"
        ) from None
    present = {s.rfilename for s in info.siblings or []}
    missing = [f for f in source.files if present and f not in present]
    if missing:
        raise StageError(
            f"benchmark '{name}': Hub dataset {source.repo}@{source.revision[:12]} has no file {missing[0]}"
        )


def _download(name: str, source: Source) -> list[Path]:
    from huggingface_hub import hf_hub_download

    paths = []
    for file in source.files:
        try:
            paths.append(
                Path(
                    hf_hub_download(
                        source.repo, file, repo_type="dataset", revision=source.revision
                    )
                )
            )
        except Exception as err:  # noqa: BLE001 - any failure to fetch is reported as one line
            raise StageError(
                f"benchmark '{name}': cannot download {file} from Hub dataset "
                f"{source.repo}@{source.revision}: {_first_line(err)}"
            ) from None
    return paths


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__
