"""A local corpus: every `.py` file under one or more folders, one row per file.

Files are found by an iterative walk (no recursion limit: a thousand nested folders are fine)
in sorted path order, so a resumed run cuts the same chunks. What cannot be read is kept as a
row with no content and a `read_error`, which `extract` drops and counts: a folder that cannot
be listed, a file that cannot be read or decoded, and a link to a file outside the corpus (not
followed: a corpus must not read `/etc/passwd` through a `passwd.py` link). Links to folders
are not walked. Rows say where they came from without the machine's layout: `repo` is the
folder's name and `path` is relative to it; the published input names only the folders.
"""

from __future__ import annotations

import hashlib
import os
import sysconfig
import tokenize
from collections.abc import Iterator
from pathlib import Path

from builder.errors import StageError
from builder.pipeline.chunk_data import ChunkTask
from builder.pipeline.input_sources import InputSource
from builder.pipeline.shards import Row

_OUTSIDE = "a link to a file outside the corpus (not followed)"


class DirInput(InputSource):
    columns = ["content", "path", "repo", "license"]

    def __init__(self, roots: str | Path | list, exclude: tuple[Path, ...] = ()):
        roots = roots if isinstance(roots, list) else [roots]
        self.roots = [Path(r).expanduser().resolve() for r in roots]
        for root, given in zip(self.roots, roots):
            if not root.is_dir():
                raise StageError(f"corpus directory does not exist: {given}")
        # (root, path, why it cannot be read or None), in sorted order per root
        self.files = [
            (root, path, why) for root in self.roots for path, why in walk(root, exclude)
        ]
        self.num_rows = len(self.files)
        # Names, sizes and times stand for the content: re-reading 100k files to hash them
        # would cost more than the extraction that follows.
        digest = hashlib.sha256()
        for _, path, why in self.files:
            stat = path.lstat() if why else path.stat()
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        names = ",".join(r.name for r in self.roots)
        self.ref = {"kind": "dir", "path": names, "revision": digest.hexdigest()[:40]}

    def iter_rows(self) -> Iterator[Row]:
        return iter(load_files([(str(r), str(p), why) for r, p, why in self.files]))

    def tasks(self, chunk_size: int, limit: int | None, spool: Path) -> Iterator[ChunkTask]:
        files = self.files if limit is None else self.files[:limit]
        for index, start in enumerate(range(0, len(files), chunk_size)):
            chunk = files[start : start + chunk_size]
            refs = tuple((str(root), str(path), why) for root, path, why in chunk)
            yield ChunkTask(index, start, start + len(chunk), refs)

    def load(self, task: ChunkTask) -> list[Row]:
        return load_files(list(task.refs))


def walk(root: Path, exclude: tuple[Path, ...] = ()) -> list[tuple[Path, str | None]]:
    """Every `.py` file under `root`, sorted, with a reason when it must not be read."""
    found: list[tuple[Path, str | None]] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as err:
            found.append((folder, f"cannot list the folder: {err.strerror}"))
            continue
        for entry in entries:
            path = Path(entry.path)
            if any(path.is_relative_to(e) for e in exclude):
                continue
            try:
                if entry.is_symlink():
                    if path.suffix == ".py" and not entry.is_dir():
                        inside = path.resolve().is_relative_to(root)
                        found.append((path, None if inside else _OUTSIDE))
                elif entry.is_dir(follow_symlinks=False):
                    stack.append(path)
                elif path.suffix == ".py" and entry.is_file(follow_symlinks=False):
                    found.append((path, None))
            except OSError as err:
                found.append((path, f"cannot read: {err.strerror}"))
    found.sort()
    return found


def load_files(refs: list[tuple[str, str, str | None]]) -> list[Row]:
    """(root, path, why not readable) -> one row per file; runs in the worker processes."""
    rows = []
    for root, path, why in refs:
        content, error = (None, why) if why else _read_source(Path(path))
        row = {
            "content": content,
            "path": str(Path(path).relative_to(root)),
            "repo": Path(root).name,
            "license": None,
        }
        if error:
            row["read_error"] = error
        rows.append(row)
    return rows


def _read_source(path: Path) -> tuple[str | None, str | None]:
    """A source file's text, honouring a PEP 263 coding line; or None and why not."""
    try:
        data = path.read_bytes()
    except OSError as err:
        return None, f"cannot read: {err.strerror}"
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        pass
    try:
        with open(path, "rb") as handle:
            encoding, _ = tokenize.detect_encoding(handle.readline)
        return data.decode(encoding), None
    except (SyntaxError, LookupError, UnicodeDecodeError):
        return None, "not UTF-8 text, nor in the encoding its coding line names"


def python_corpus(which: str) -> DirInput:
    """`python:stdlib`, `python:site-packages` or `python:all`: the running interpreter's own
    code, a real corpus that nobody here wrote."""
    paths = sysconfig.get_paths()
    site = sorted({Path(paths["purelib"]).resolve(), Path(paths["platlib"]).resolve()})
    stdlib = Path(paths["stdlib"]).resolve()
    # A stdlib folder may hold the base interpreter's own site-packages: not the stdlib.
    stdlib_site = tuple(stdlib.glob("site-packages")) + tuple(stdlib.glob("dist-packages"))
    if which == "stdlib":
        return DirInput([stdlib], exclude=stdlib_site + tuple(site))
    if which == "site-packages":
        return DirInput([str(p) for p in site])
    if which == "all":
        return DirInput([stdlib] + [str(p) for p in site if not p.is_relative_to(stdlib)])
    raise StageError(
        f"unknown source 'python:{which}': use python:stdlib, python:site-packages or python:all"
    )
