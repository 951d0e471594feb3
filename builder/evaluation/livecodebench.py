"""LiveCodeBench code generation (`livecodebench/code_generation_lite`): problems by release and
date window, prompts, grading in the sandbox with LiveCodeBench's rules (see `_lcb_driver.py`).

Data: the release's jsonl files (`test.jsonl`, `test2.jsonl`, ... `test6.jsonl`: release_v1 is the
first, each later release adds the next), a folder holding them, or one jsonl / jsonl.gz /
parquet file (the Hub's parquet conversion). Private tests come as JSON or, in the lite
release, as base64 of zlib of a pickled JSON string: that pickle is read with an unpickler that
refuses every class, so it can only give back a string.

Scores: pass@1 (pass@k with several samples) over the problems, and per difficulty.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import pickle
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from builder.errors import BuilderError
from builder.evaluation.evalplus_data import read_jsonl_bytes
from builder.evaluation.grading import check_task_ids, run_graded
from builder.evaluation.grouped import GroupedScores
from builder.evaluation.prompts import load_prompts
from builder.sandbox import Program, SandboxLimits

DRIVER = (Path(__file__).with_name("_lcb_driver.py")).read_text()
TIMEOUT_S = 6  # LiveCodeBench's per-test limit
RELEASE_FILES = (
    "test.jsonl",
    "test2.jsonl",
    "test3.jsonl",
    "test4.jsonl",
    "test5.jsonl",
    "test6.jsonl",
)
# LiveCodeBench's header in front of every solution (its `import_string`), as data.
IMPORT_HEADER = "".join(f"from {m} import *\n" for m in (
    "string", "re", "datetime", "collections", "heapq", "bisect", "copy", "math", "random",
    "statistics", "itertools", "functools", "operator", "io", "sys", "json", "builtins", "typing",
)) + "".join(f"import {m}\n" for m in (
    "string", "re", "datetime", "collections", "heapq", "bisect", "copy", "math", "random",
    "statistics", "itertools", "functools", "operator", "io", "sys", "json",
)) + "sys.setrecursionlimit(50000)\n"  # fmt: skip


class _NoClasses(pickle.Unpickler):
    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refused {module}.{name}")


def decode_tests(text: str) -> list[dict]:
    try:
        return json.loads(text)
    except ValueError:
        raw = zlib.decompress(base64.b64decode(text.encode("utf-8")))
        return json.loads(_NoClasses(io.BytesIO(raw)).load())


@dataclass
class LCBData:
    path: Path
    md5: str
    problems: dict[str, dict] = field(repr=False)  # "LCB/<question_id>" -> row (tests decoded)
    release: str = ""
    window: tuple[str | None, str | None] = (None, None)
    benchmark: str = "livecodebench"

    @property
    def version(self) -> str:
        start, end = self.window
        dates = f" {start or '...'}..{end or '...'}" if start or end else ""
        return f"{self.release or 'md5:' + self.md5[:8]}{dates}"


def _files(path: Path, release: str | None) -> list[Path]:
    if path.is_dir():
        count = (
            int(release.removeprefix("release_v"))
            if release and release != "release_latest"
            else len(RELEASE_FILES)
        )
        files = [path / name for name in RELEASE_FILES[:count] if (path / name).is_file()]
        if not files:
            raise BuilderError(
                f"{path} holds none of LiveCodeBench's files ({', '.join(RELEASE_FILES)})"
            )
        return files
    if release:
        raise BuilderError("--lcb-release needs --data-file to be the folder of the release files")
    return [path]


def _rows(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    return [
        json.loads(line)
        for line in read_jsonl_bytes(path).decode("utf-8").splitlines()
        if line.strip()
    ]


def _decoded(row: dict, file: Path) -> dict:
    try:
        metadata = row.get("metadata") or "{}"
        return {**row, "metadata": json.loads(metadata) if isinstance(metadata, str) else metadata,
                "public_test_cases": decode_tests(row["public_test_cases"]),
                "private_test_cases": decode_tests(row["private_test_cases"])}  # fmt: skip
    except (ValueError, KeyError, zlib.error, pickle.UnpicklingError, EOFError) as err:
        name = row.get("question_id", "?")
        raise BuilderError(f"{file.name}: problem {name}: unreadable tests ({err})") from None


def load_livecodebench(
    data_file, release: str | None = None, start: str | None = None, end: str | None = None
) -> LCBData:
    """Problems of `release` (release_v1..v6, release_latest) whose contest date is in [start, end]."""
    if not data_file:
        raise BuilderError("livecodebench needs --data-file: the release's files or their folder")
    path = Path(data_file)
    digest = hashlib.md5()  # an identity, not security
    problems = {}
    for file in _files(path, release):
        for row in _rows(file):
            date = str(row["contest_date"])[:10]
            if (start and date < start) or (end and date > end):
                continue
            row = _decoded(row, file)
            problems[f"LCB/{row['question_id']}"] = row
            digest.update(row["question_id"].encode())
        digest.update(file.name.encode())
    if not problems:
        raise BuilderError(f"no LiveCodeBench problem in {path} for that release and date window")
    return LCBData(path.resolve(), digest.hexdigest(), problems, release or "", (start, end))


def instruction(problem: dict) -> str:
    """The question in LiveCodeBench's generic format (the one its chat models get)."""

    spec = load_prompts().tasks["livecodebench"]
    if problem.get("starter_code"):
        fmt = spec["with_starter_code"].format(starter_code=problem["starter_code"])
    else:
        fmt = spec["without_starter_code"]
    return spec["instruction"].format(question=problem["question_content"], format=fmt)


def job(problem: dict, code: str, marker: str) -> dict:
    tests = problem["public_test_cases"] + problem["private_test_cases"]
    return {"code": code, "inputs": [t["input"] for t in tests], "outputs": [t["output"] for t in tests],
            "fn_name": problem["metadata"].get("func_name"), "timeout": TIMEOUT_S,
            "header": IMPORT_HEADER, "marker": marker}  # fmt: skip


@dataclass
class LCBVerdict:
    task_id: str
    index: int
    code: str
    results: list  # per test: true, -1 (global timeout), -2 wrong, -3 time limit, -4 error

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(r is True for r in self.results)


def grade_livecodebench(
    data: LCBData, samples, *, backend: str = "local", workers: int | None = None
) -> list[LCBVerdict]:
    import secrets


    check_task_ids(samples, data.problems, "livecodebench", " in this release and window")
    marker = f"@lcb-{secrets.token_hex(8)}"
    jobs = [job(data.problems[s.task_id], s.solution, marker) for s in samples]
    programs = [Program(f"lcb-{i}", f"{DRIVER}\n\nmain({base64.b64encode(json.dumps(j).encode()).decode()!r})\n")
                for i, j in enumerate(jobs)]  # fmt: skip
    longest = max((TIMEOUT_S + 1) * len(j["inputs"]) + 5 for j in jobs)
    limits = SandboxLimits(
        timeout_s=longest + 30,
        cpu_time_s=int(longest + 30),
        max_output_bytes=1 << 22,
        keep_output_bytes=1 << 22,
    )
    results = run_graded(programs, "LiveCodeBench", backend, limits, workers)
    return [
        LCBVerdict(s.task_id, s.index, s.solution, _report(r.stdout, marker, len(j["inputs"])))
        for s, r, j in zip(samples, results, jobs)
    ]


def _report(stdout: str, marker: str, tests: int) -> list:
    """The driver's tagged line, checked; missing or malformed: every test failed (-1)."""
    for line in stdout.splitlines():
        if line.startswith(marker + " "):
            try:
                results = json.loads(line[len(marker) + 1 :])
            except ValueError:
                break
            if (
                isinstance(results, list)
                and len(results) <= tests
                and all(r is True or r is False or r in (-1, -2, -3, -4) for r in results)
            ):
                return results
            break
    return [-1] * tests


@dataclass
class LCBResult(GroupedScores):
    data: LCBData
    verdicts: list[LCBVerdict]
    benchmark: ClassVar[str] = "livecodebench"

    def group_of(self, task_id: str) -> str | None:
        return self.data.problems[task_id].get("difficulty")

    def rows(self) -> list[dict]:
        return [{
            "benchmark": "livecodebench", "task_id": v.task_id, "sample_index": v.index,
            "difficulty": self.data.problems[v.task_id].get("difficulty"),
            "contest_date": str(self.data.problems[v.task_id]["contest_date"]),
            **(self.extras[i] if self.extras else {}),
            "code": v.code, "passed": v.passed, "test_results": json.dumps(v.results),
        } for i, v in enumerate(self.verdicts)]  # fmt: skip
