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
times, which is all the host itself reads. Expected outputs can be large (HumanEval/15 and /130
together weigh 240 MB): the pickles reach the sandbox as files in a read-only bound directory,
not through the program's text.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from builder.errors import BuilderError
from builder.evaluation.evalplus_data import EvalPlusData, deserialize_inputs, read_jsonl_bytes

log = logging.getLogger(__name__)

GT_VERSION = 1  # bump when what a task file holds, or how it is computed, changes


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
    """The ground truth of `task_ids`, computing (in a child process) what the cache lacks."""
    folder = groundtruth_folder(data, cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    missing = [t for t in task_ids if not (folder / f"{task_file_stem(t)}.json").is_file()]
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
    times = {}
    for task_id in task_ids:
        times[task_id] = json.loads((folder / f"{task_file_stem(task_id)}.json").read_text())
    return GroundTruth(folder, times)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


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
        _atomic_write(stem.with_suffix(".pkl"), pickle.dumps(task, pickle.HIGHEST_PROTOCOL))
        times = {"base_time": task["base_time"], "plus_time": task["plus_time"]}
        _atomic_write(stem.with_suffix(".json"), json.dumps(times).encode())


if __name__ == "__main__":
    _compute(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:])
