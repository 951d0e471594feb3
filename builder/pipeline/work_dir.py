"""A work directory that cannot be written (full, read-only, not a folder) as one line naming
it, as a full store is: the step's own writes (parquet shards, chunk files, a Trainer's
checkpoints) fail deep inside pyarrow or torch, with errors that name no folder (pyarrow's
"Error writing bytes to file", torch's "unexpected pos"). A rerun after freeing space resumes
from the finished chunks or checkpoints, as after any crash.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from builder.store.base import DiskError
from builder.store.files import write_error_message

_FULL = (errno.ENOSPC, errno.EDQUOT)
# Only when the folder itself cannot be made (during a run, a missing file is a bug to show).
_NOT_A_FOLDER = {errno.ENOTDIR: "not a folder", errno.ENOENT: "no such folder"}
# What torch's zip writer and pyarrow say about a write that did not go through.
_WRITE_FAILED = ("unexpected pos", "file write failed", "No space left on device", "[Errno 28]")
_NEARLY_FULL = 64 << 20


def check_work_dir(folder: Path) -> None:
    """The work directory exists (made if need be) and takes a file; DiskError otherwise."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            pass
    except OSError as err:
        if err.errno not in _NOT_A_FOLDER and (message := write_error_message(err.errno, folder)):
            raise DiskError(message) from None
        why = _NOT_A_FOLDER.get(err.errno) or err.strerror or str(err)
        raise DiskError(f"cannot use work_dir {folder}: {why}") from None


@contextmanager
def work_dir_errors(folder: Path):
    """Failed writes under `folder` become a DiskError naming it; other errors pass."""
    try:
        yield
    except DiskError:
        raise
    except (OSError, RuntimeError) as err:
        message = _disk_message(err, folder)
        if message is None:
            raise
        raise DiskError(message) from None


def _disk_message(err: BaseException, folder: Path) -> str | None:
    number = getattr(err, "errno", None)
    text = str(err)
    filename = getattr(err, "filename", None)
    inside = filename is None or _under(Path(str(filename)), folder)
    if number in _FULL or "No space left on device" in text or "[Errno 28]" in text:
        # pyarrow says so in its message only, with no errno
        return write_error_message(number or errno.ENOSPC, folder if inside else filename)
    if filename is not None and inside and (message := write_error_message(number, folder)):
        return message
    if isinstance(err, RuntimeError) and any(s in text for s in _WRITE_FAILED):
        if _free(folder) < _NEARLY_FULL:
            return f"no space left on {folder}"
    return None


def _under(path: Path, folder: Path) -> bool:
    try:
        return Path(os.path.abspath(path)).is_relative_to(os.path.abspath(folder))
    except (OSError, ValueError):
        return False


def _free(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 0
