"""The E2B backend's pure parts: what is uploaded, the command that runs a batch, its output.

Nothing here talks to E2B, so all of it is tested offline (and the command really runs, on a
Linux host as root, in tests/test_sandbox_e2b.py).
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from builder.sandbox.base import ExecResult, SandboxLimits

HARNESS_DIR = "/opt/builder-harness"  # in the E2B sandbox; never under /tmp (remounted per batch)
HARNESS_FILES = ("_worker.py", "_child.py", "_scratch.py", "_e2b_driver.py")
PROGRAM_UID = 2000  # runs the programs: not root, not the template's `user`
RESULT_FIELDS = ("status", "duration_s", "stdout", "stderr", "exit_code", "error")


def harness_files(harness_dir: str = HARNESS_DIR) -> list[dict]:
    """The files to upload, as `files.write_files` entries ({"path", "data"})."""
    here = Path(__file__).resolve().parent
    return [
        {"path": f"{harness_dir}/{name}", "data": (here / name).read_bytes()}
        for name in HARNESS_FILES
    ]


def batch_payload(codes: Sequence[str], limits: SandboxLimits) -> str:
    """The batch file: the worker's configuration (as the local backend gives it) and the code."""
    config = {**dataclasses.asdict(limits), "python_paths": [], "scratch_mounts": []}
    return json.dumps({"config": config, "codes": list(codes)})


def driver_command(
    batch_path: str,
    limits: SandboxLimits,
    *,
    harness_dir: str = HARNESS_DIR,
    python: str = "python3",
    uid: int = PROGRAM_UID,
) -> str:
    """The shell command (run as root) that runs one batch in fresh namespaces.

    unshare gives the driver its own PID namespace (it is PID 1 there), mount namespace (its
    own /proc, and size-limited tmpfs on /tmp and /dev/shm that vanish with it) and IPC
    namespace; setpriv then drops to `uid` with no groups, no capabilities and no_new_privs.
    """
    size = limits.tmpfs_bytes
    mounts = " && ".join(
        f"mount -t tmpfs -o size={size},mode=1777,nosuid,nodev tmpfs {path}"
        for path in ("/tmp", "/dev/shm")
    )
    run = shlex.join(
        [
            "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs",
            python, "-I", f"{harness_dir}/_e2b_driver.py", batch_path,
        ]
    )  # fmt: skip
    inner = f"{mounts} && cd /tmp && exec {run}"
    # Uploads are root's: make sure the program's uid can read the harness and the batch.
    readable = shlex.join(["chmod", "-R", "a+rX", harness_dir])
    unshare = shlex.join(
        [
            "unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "--mount",
            "--propagation", "private", "--ipc", "sh", "-c", inner,
        ]
    )  # fmt: skip
    return f"{readable} && {unshare}"


def command_timeout(count: int, limits: SandboxLimits, slack_s: float = 30.0) -> float:
    """How long a batch of `count` programs may take, each one at most timeout + 2 s."""
    return count * (limits.timeout_s + 2.0) + slack_s


@dataclass
class BatchOutput:
    """What the driver printed: results by index, and why it stopped when it did."""

    results: dict[int, dict] = field(default_factory=dict)
    ready: dict | None = None
    fatal: str = ""
    recycled: bool = False  # it stopped on purpose after the last result; run the rest afresh


def parse_output(text: str) -> BatchOutput:
    """Parse the driver's JSON lines; a truncated last line (a dying driver) is ignored."""
    out = BatchOutput()
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict):
            continue
        if "fatal" in record:
            out.fatal = str(record["fatal"])
        elif record.get("ready"):
            out.ready = record
        elif isinstance(record.get("index"), int) and all(k in record for k in RESULT_FIELDS):
            out.results[record["index"]] = record
            out.recycled = bool(record.get("recycle"))
    return out


def to_result(program_id: str, record: dict) -> ExecResult:
    return ExecResult(id=program_id, **{k: record[k] for k in RESULT_FIELDS})
