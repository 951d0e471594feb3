"""EvalPlus ground truth: expected outputs and reference times of the canonical solutions.

Computed as `evalplus.evaluate` computes it (its `trusted_exec`: each canonical solution on a
deep copy of each input, timed with time.time(); MBPP's output-not-None tasks reduced to
booleans), in one child process of the host running the tasks one after the other in file
order, as EvalPlus's main process does. Canonical solutions are the benchmark's own reference
code, trusted by EvalPlus; they run outside the sandbox (in a child process, so that nothing
they do to the interpreter reaches ours), the candidate solutions never do.

The result is cached per dataset (the md5 EvalPlus uses), Python version and `GT_VERSION`, one
pickle per task with everything the sandbox needs to grade it (inputs as EvalPlus passes them,
expected outputs, atol, entry point, reference times) and one small JSON per task with the
times and the SHA-256 of the pickle, which is all the host itself reads. Both are written
atomically and flushed, the JSON after the pickle; an entry whose JSON does not parse, whose
pickle is missing or does not match its hash (a truncated copy in a shared cache) is named in a
warning and computed again. Expected outputs can be large (HumanEval/15 and /130
together weigh 240 MB): the pickles reach the sandbox as files in a read-only bound directory,
not through the program's text.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from builder.errors import BuilderError
from builder.evaluation.evalplus_data import EvalPlusData, deserialize_inputs, read_jsonl_bytes
from builder.store.files import write_atomic

log = logging.getLogger(__name__)

GT_VERSION = 2  # bump when what a task file holds, or how it is computed, changes (2: hashes)


def task_file_stem(task_id: str) -> str:
    return task_id.replace("/", "_")


@dataclass
class GroundTruth:
    folder: Path
    times: dict[str, dict[str, list[float]]]  # task_id -> {"base_time": [...], "plus_time": [...]}

    def task_path(self, task_id: str) -> Path:
        return self.folder / f"{task_file_stem(task_id)}.pkl"

    def cost(self, task_id: str) -> float:
        """Seconds the canonical solution took on all inputs: a correct sample's cost."""
        times = self.times[task_id]
        return sum(times["base_time"]) + sum(times["plus_time"])


def groundtruth_folder(data: EvalPlusData, cache_dir: Path) -> Path:
    python = f"py{sys.version_info.major}{sys.version_info.minor}"
    return (
        Path(cache_dir).expanduser() / "evalplus-groundtruth" / f"{data.md5}-{python}-g{GT_VERSION}"
    )


def ensure_groundtruth(data: EvalPlusData, task_ids: list[str], cache_dir: Path) -> GroundTruth:
    """The ground truth of `task_ids`, computing (in a child process) what the cache lacks and
    what it holds damaged."""
    folder = groundtruth_folder(data, cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    times, missing = {}, []
    for task_id in task_ids:
        entry, problem = _read_entry(folder, task_id)
        if entry is None:
            if problem:
                log.warning("%s: the cached ground truth of %s is damaged (%s): computing it "
                            "again", data.benchmark, task_id, problem)  # fmt: skip
            missing.append(task_id)
        else:
            times[task_id] = entry
    if missing:
        log.info(
            "%s: computing the ground truth of %d tasks (cached in %s)",
            data.benchmark,
            len(missing),
            folder,
        )
        command = [sys.executable, "-m", "builder.evaluation.groundtruth", str(data.path),
                   data.dataset, str(folder), *missing]  # fmt: skip
        done = subprocess.run(command, check=False, capture_output=True, text=True)
        if done.returncode != 0:
            tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
            raise BuilderError(f"computing the {data.benchmark} ground truth failed: {tail[0]}")
        for task_id in missing:
            entry, problem = _read_entry(folder, task_id)
            if entry is None:
                raise BuilderError(
                    f"the {data.benchmark} ground truth of {task_id} in {folder} is damaged "
                    f"right after computing it ({problem or 'missing'})"
                )
            times[task_id] = entry
    return GroundTruth(folder, times)


def _read_entry(folder: Path, task_id: str) -> tuple[dict | None, str | None]:
    """(the task's times, None) if its cache entry is whole; else (None, what is wrong), or
    (None, None) when there is no entry."""
    stem = folder / task_file_stem(task_id)
    try:
        entry = json.loads(stem.with_suffix(".json").read_bytes())
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError) as err:
        return None, f"{stem.name}.json: {str(err).splitlines()[0]}"
    if not isinstance(entry, dict) or "pkl_sha256" not in entry:
        return None, f"{stem.name}.json holds no hash of its pickle"
    try:
        digest = _sha256(stem.with_suffix(".pkl"))
    except OSError as err:
        return None, f"{stem.name}.pkl: {err.strerror}"
    if digest != entry["pkl_sha256"]:
        return None, f"{stem.name}.pkl does not match its hash"
    return entry, None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _compute(data_file: str, dataset: str, folder: str, task_ids: list[str]) -> None:
    """Runs in the child process (`python -m builder.evaluation.groundtruth ...`)."""
    from evalplus.eval._special_oracle import MBPP_OUTPUT_NOT_NONE_TASKS
    from evalplus.gen.util import trusted_exec


    wanted = set(task_ids)
    rows = [json.loads(line) for line in read_jsonl_bytes(Path(data_file)).decode().splitlines()
            if line.strip()]  # fmt: skip
    not_none = MBPP_OUTPUT_NOT_NONE_TASKS if dataset == "mbpp" else []
    for row in rows:  # file order, as EvalPlus
        task_id = row["task_id"]
        if task_id not in wanted:
            continue
        code = row["prompt"] + row["canonical_solution"]
        task = {"task_id": task_id, "entry_point": row["entry_point"], "atol": row["atol"]}
        for part in ("base", "plus"):
            inputs = deserialize_inputs(dataset, task_id, row[f"{part}_input"])
            task[f"{part}_input"] = inputs
            task[part], task[f"{part}_time"] = trusted_exec(
                code, inputs, row["entry_point"], record_time=True,
                output_not_none=row["entry_point"] in not_none,
            )  # fmt: skip
        stem = Path(folder) / task_file_stem(task_id)
        pickled = pickle.dumps(task, pickle.HIGHEST_PROTOCOL)
        write_atomic(stem.with_suffix(".pkl"), pickled)
        times = {"base_time": task["base_time"], "plus_time": task["plus_time"],
                 "pkl_sha256": hashlib.sha256(pickled).hexdigest()}  # fmt: skip
        write_atomic(stem.with_suffix(".json"), json.dumps(times).encode())


if __name__ == "__main__":
    _compute(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:])
