"""Durable, verified files: what the local store (and `store export`'s output) is made of.

- `write_atomic`: the content goes to a temporary file beside the target, is flushed to disk
  (fsync), renamed over the target, and the folder is flushed too (a rename is only durable once
  its folder is). Readers see the old file or the new one, never a part; after a power cut the
  file is whole or absent. On any error the temporary file is removed; a `kill -9` can leave
  one behind (`.NAME.PID.RANDOM.tmp`), which nothing reads and `store verify --repair` removes.
- `disk_errors`: a full, read-only or unwritable disk becomes one line naming the folder.
- `check_object`: a content-addressed file checked against its SHA-256 and size, once per
  process and file version (one read of the file: see benchmarks/bench_store.py for the cost).

Not covered: a disk that returns different bytes on a second read of a verified file (bit rot
after the check, within one process), and filesystems whose fsync lies.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import shutil
from collections.abc import Callable
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import BinaryIO

from builder.store.base import DiskError

_BLOCK = 1 << 20
_WRITE_ERRORS = {
    errno.ENOSPC: "no space left on {folder}",
    errno.EDQUOT: "no space left on {folder} (disk quota exceeded)",
    errno.EROFS: "cannot write to {folder}: read-only file system",
    errno.EACCES: "cannot write to {folder}: permission denied",
    errno.EPERM: "cannot write to {folder}: permission denied",
    errno.EIO: "cannot write to {folder}: input/output error",
}


def write_error_message(number: int | None, folder: Path) -> str | None:
    """One line for a failed write under `folder` with this errno, or None for other errors."""
    message = _WRITE_ERRORS.get(number)
    return message.format(folder=folder) if message else None


@contextmanager
def disk_errors(folder: Path):
    """Errors of writing under `folder` as one line (DiskError); others propagate."""
    try:
        yield
    except OSError as err:
        message = write_error_message(err.errno, folder)
        if message is None:
            raise
        raise DiskError(message) from None


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """Flush a file written earlier (maybe by a process that died before flushing it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def write_atomic(
    target: Path, content: str | bytes | Callable[[BinaryIO], None], mode: int | None = None
) -> None:
    """Replace `target` with `content` (text, bytes, or a function writing to a binary file),
    atomically and durably; `mode`: the file's permissions (e.g. 0o444 for store objects)."""
    folder = target.parent
    tmp = temp_name(target)
    with disk_errors(folder):
        try:
            with open(tmp, "xb") as handle:
                if callable(content):
                    content(handle)
                else:
                    handle.write(content.encode() if isinstance(content, str) else content)
                handle.flush()
                os.fsync(handle.fileno())
            if mode is not None:
                os.chmod(tmp, mode)
            os.replace(tmp, target)
        except BaseException:
            _remove_quietly(tmp)
            raise
        fsync_dir(folder)


def copy_atomic(source: Path, target: Path, mode: int | None = None) -> None:
    """`write_atomic` with the bytes of the file `source`."""
    with open(source, "rb") as src:
        write_atomic(target, lambda dst: shutil.copyfileobj(src, dst, _BLOCK), mode)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


class ObjectState(Enum):
    INTACT = "intact"
    DAMAGED = "damaged"
    MISSING = "missing"


# Files found intact in this process, by identity and version: (path, device, inode, size,
# mtime). A file changed since (even in place) has another key and is checked again.
_intact: set[tuple] = set()


def check_object(path: Path, digest: str, size: int | None = None, git_blob: bool = False):
    """Whether the file at `path` has this SHA-256 (or, `git_blob`, this git blob id) and
    size: an ObjectState, hashed once per process and file version."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return ObjectState.MISSING
    key = (str(path), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if key in _intact:
        return ObjectState.INTACT
    if size is not None and stat.st_size != size:
        return ObjectState.DAMAGED
    found = git_blob_id(path, stat.st_size) if git_blob else file_sha256(path)
    if found != digest:
        return ObjectState.DAMAGED
    _intact.add(key)
    return ObjectState.INTACT


def git_blob_id(path: Path, size: int) -> str:
    """The id git (and the Hub) gives a regular file: SHA-1 of a header and the content."""
    digest = hashlib.sha1(b"blob %d\0" % size)
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass  # the error being raised says more than this one would
