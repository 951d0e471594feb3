"""Checkpoints: each one the Trainer saves becomes a revision of the model repository (branch
`step-NNNNNN`), published in the background while training goes on; and the point a rerun
resumes from.

When the Trainer has saved `checkpoint-N` (`on_save`), its files are hard-linked into a staging
folder (the Trainer may delete the checkpoint meanwhile, `save_total_limit`), laid out as users
load a model: weights, config and tokenizer at the top, the optimizer, scheduler, RNG and trainer
state under `training_state/` (which `from_pretrained` never downloads), plus the loss plot and
TensorBoard files. Then a marker file written into the checkpoint says it is complete, and one
background thread publishes staged folders in step order. A staged folder is removed once
published; one left by a killed run is published by the next run, unless the store already has
it (the run was killed after the commit, before removing the folder).

To resume, the step takes the newest complete checkpoint in the work directory, or, when the
store has a newer checkpoint revision made with the same fingerprint (the work directory is
gone, or another machine trained), downloads it and rebuilds the Trainer's folder from it.
A local checkpoint whose files are damaged behind its marker (a truncated weights or optimizer
file, a trainer state that is not JSON) is named in a warning and set aside as
`damaged-checkpoint-N`; the same step from the store, else the next older good checkpoint,
is taken instead. A checkpoint at the run's last step (killed between the last save and the
final publish) is `finished`: the step loads it and trains nothing more.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from builder.errors import StageError
from builder.stages.train.checkpoint_damage import checkpoint_damage
from builder.store.files import write_atomic

log = logging.getLogger(__name__)

BRANCH_PREFIX = "step-"
MARKER = "builder_checkpoint.json"  # written last: the checkpoint is complete
STATE_DIR = "training_state"
# Files of a Trainer checkpoint that only resuming needs.
_STATE_FILES = re.compile(
    r"^(optimizer\.pt|scheduler\.pt|scaler\.pt|rng_state.*\.pth|trainer_state\.json|"
    r"training_args\.bin|" + re.escape(MARKER) + r")$"
)
_CARD_FILES = ("README.md", "manifest.json")


def branch_name(step: int) -> str:
    return f"{BRANCH_PREFIX}{step:06d}"


def step_of(branch: str) -> int | None:
    match = re.fullmatch(re.escape(BRANCH_PREFIX) + r"(\d+)", branch)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class ResumePoint:
    path: Path  # the Trainer's checkpoint folder
    step: int
    source: str  # "work directory" or "store (<branch>@<commit>)"
    wall_time_s: float  # training time that led to it, over every earlier session
    finished: bool = False  # its step is the run's last: nothing is left to train


def complete_checkpoints(trainer_dir: Path) -> dict[int, Path]:
    """Checkpoint folders with their marker; folders without one (a run killed while saving)
    are removed, so that the Trainer never reads them."""
    found = {}
    for path in trainer_dir.glob("checkpoint-*"):
        if not path.name.removeprefix("checkpoint-").isdigit():
            continue
        if (path / MARKER).is_file():
            found[int(path.name.removeprefix("checkpoint-"))] = path
        else:
            log.info("removing incomplete checkpoint %s", path)
            shutil.rmtree(path, ignore_errors=True)
    return found


def find_resume_point(trainer_dir: Path, revisions) -> ResumePoint | None:
    local = complete_checkpoints(trainer_dir)
    remote = {}
    if revisions is not None:
        for branch, (commit, _) in revisions.published(BRANCH_PREFIX).items():
            if (step := step_of(branch)) is not None:
                remote[step] = (branch, commit)
    for step in sorted(set(local) | set(remote), reverse=True):
        if step in local:  # the work directory's first: nothing to download
            damage = checkpoint_damage(local[step])
            if damage is None:
                return _point(local[step], step, "work directory")
            aside = local[step].with_name(f"damaged-{local[step].name}")
            log.warning(
                "train: checkpoint %s is damaged (%s): set aside as %s; taking the store's copy "
                "or an older checkpoint", local[step], damage, aside.name,
            )  # fmt: skip
            shutil.rmtree(aside, ignore_errors=True)
            os.replace(local[step], aside)
        if step in remote:
            branch, commit = remote[step]
            path = _download(revisions, commit, trainer_dir / f"checkpoint-{step}")
            return _point(path, step, f"store ({branch}@{commit[:12]})")
    return None


def _point(path: Path, step: int, source: str) -> ResumePoint:
    try:
        state = json.loads((path / "trainer_state.json").read_text())
    except (OSError, ValueError):
        state = {}  # the Trainer says what is wrong with it when it resumes
    finished = 0 < int(state.get("max_steps") or 0) <= int(state.get("global_step") or 0)
    return ResumePoint(path, step, source, _wall_time(path), finished)


def _download(revisions, commit: str, target: Path) -> Path:
    """Rebuild a Trainer checkpoint folder from a published checkpoint revision."""
    tmp = target.with_name(f".{target.name}.download")
    shutil.rmtree(tmp, ignore_errors=True)
    files = revisions.fetch(commit)
    for name, local in files.items():
        if name in _CARD_FILES or name.startswith("runs/") or name == "loss.svg":
            continue
        name = name.removeprefix(f"{STATE_DIR}/")
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(Path(local).resolve(), tmp / name)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return target


def _wall_time(path: Path) -> float:
    try:
        return float(json.loads((path / MARKER).read_text()).get("wall_time_s", 0.0))
    except (OSError, ValueError):
        return 0.0


class CheckpointPublisher:
    """Stages each saved checkpoint and publishes it on its own branch in a background thread.

    `describe(step, log_history, folder)` writes the card's extra files into a staged folder and
    returns the manifest facts of that checkpoint revision."""

    def __init__(self, work: Path, revisions, describe: Callable[[int, list, Path], dict]):
        self.staged = work / "staged"
        self.revisions = revisions
        self.describe = describe
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="publish-checkpoint")
        self.futures: dict[int, Future] = {}
        self.commits: dict[int, str] = {}

    def publish_left_over(self) -> None:
        """Staged folders a killed run did not get to publish (or to remove once published:
        a branch this run's fingerprint already has is not published twice)."""
        for partial in self.staged.glob(".*"):  # cut off while staging
            _remove(partial)
        for facts in self.staged.glob("*.facts.json"):  # cut off while removing a published one
            if not facts.with_name(facts.name.removesuffix(".facts.json")).is_dir():
                facts.unlink()
        folders = sorted(p for p in self.staged.glob(f"{BRANCH_PREFIX}*") if p.is_dir())
        if self.revisions is None or not folders:
            return
        done = self.revisions.published(BRANCH_PREFIX)
        for folder in folders:
            step = step_of(folder.name)
            if step is None or not _facts_file(folder).is_file():
                shutil.rmtree(folder, ignore_errors=True)  # facts written first: not staged yet
            elif folder.name in done:
                self._remove_staged(folder)
            else:
                log.info("publishing checkpoint %s left by an earlier run", folder.name)
                self._submit(step, folder)

    def saved(self, checkpoint: Path, step: int, log_history: list, wall_time_s: float) -> None:
        """The Trainer finished writing `checkpoint` (called from the training thread)."""
        marker = json.dumps({"step": step, "wall_time_s": round(wall_time_s, 3)})
        if self.revisions is not None:
            folder = self._stage(checkpoint, step, log_history, marker)
        write_atomic(checkpoint / MARKER, marker)
        if self.revisions is not None:
            self._submit(step, folder)

    def wait(self) -> dict[int, str]:
        """Block until every checkpoint is published; step -> commit. A failed upload is a
        StageError (after the others finished): its staged folder stays for the next run."""
        failures = []
        for step, future in sorted(self.futures.items()):
            try:
                self.commits[step] = future.result()
            except Exception as err:  # noqa: BLE001  # reported together below
                failures.append(
                    f"{branch_name(step)}: {str(err).splitlines()[0] if str(err) else err!r}"
                )
        self.futures.clear()
        if failures:
            raise StageError(
                f"checkpoint revisions not published ({'; '.join(failures)}); "
                "rerun the same command to publish them"
            )
        return dict(self.commits)

    def close(self, cancel_pending: bool = False) -> None:
        """Wait for the upload under way; with `cancel_pending` (training failed or was
        interrupted), queued ones are not started: their staged folders wait for the next run."""
        self.pool.shutdown(wait=True, cancel_futures=cancel_pending)

    def _stage(self, checkpoint: Path, step: int, log_history: list, marker: str) -> Path:
        branch = branch_name(step)
        tmp, folder = self.staged / f".{branch}", self.staged / branch
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / STATE_DIR).mkdir(parents=True)
        (tmp / STATE_DIR / MARKER).write_text(marker)  # a download of it is complete
        for path in sorted(p for p in checkpoint.rglob("*") if p.is_file()):
            name = path.relative_to(checkpoint).as_posix()
            if name in _CARD_FILES:
                continue
            target = tmp / (f"{STATE_DIR}/{name}" if _STATE_FILES.match(name) else name)
            target.parent.mkdir(parents=True, exist_ok=True)
            _link_or_copy(path, target)
        facts = self.describe(step, log_history, tmp)
        write_atomic(_facts_file(folder), json.dumps(facts, default=str))
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
        return folder

    def _remove_staged(self, folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)
        _facts_file(folder).unlink(missing_ok=True)

    def _submit(self, step: int, folder: Path) -> None:
        self.futures[step] = self.pool.submit(self._publish, step, folder)

    def _publish(self, step: int, folder: Path) -> str:
        started = time.monotonic()
        facts = json.loads(_facts_file(folder).read_text())
        title = f"train: checkpoint at step {step}"
        commit = self.revisions.publish(folder, branch_name(step), facts, title)
        self._remove_staged(folder)
        log.info(
            "published checkpoint %s@%s (%.1f s, in the background)",
            branch_name(step), commit[:12], time.monotonic() - started,
        )  # fmt: skip
        return commit


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _facts_file(folder: Path) -> Path:
    """The manifest facts of a staged checkpoint, beside it (not one of its published files)."""
    return folder.with_name(f"{folder.name}.facts.json")


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system
        shutil.copy2(source, target)
