"""DS-1000 (the `xlangai/DS-1000` release format): problems, prompts, grading in the sandbox.

A problem is a jsonl row with `prompt`, `reference_code`, `code_context` (the test harness: it
defines `test_execution(code)` and sometimes `test_string(code)`) and `metadata` (`problem_id`,
`library`, ...). Grading follows DS-1000's own evaluation: the completion is cleaned up
(`postprocess`), the program is `code_context`, then `code = <the solution as a string>`,
`test_execution(code)` and, when the context defines it, `test_string(code)`; the sample passes
when that program runs to its end within 120 s. The program runs in our sandbox (whose earned
pass means exactly that), with the libraries DS-1000 tests (numpy, pandas, scipy, sklearn,
matplotlib, torch, tensorflow) bound read-only from this environment where they are installed.
Unlike DS-1000's own runner, the program's os/shutil functions are not disabled (the sandbox is
the protection): a solution that deletes files passes here and fails there.

Prompts follow the completion mode of the published StarCoder2-Instruct evaluation: the question
becomes the instruction; the response starts with the question's setup code and a `# Solution`
line, and generation stops at the closing fence (see `completion_prompt`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from builder.errors import BuilderError
from builder.evaluation.evalplus_data import read_jsonl_bytes
from builder.evaluation.grading import check_task_ids, run_graded
from builder.evaluation.grouped import GroupedScores
from builder.registry import SANDBOXES
from builder.sandbox import Program, SandboxLimits

TIMEOUT_S = 120.0  # DS-1000's own per-program limit
LIBRARIES = ("numpy", "pandas", "scipy", "sklearn", "matplotlib", "torch", "tensorflow")


@dataclass
class DS1000Data:
    path: Path
    md5: str
    problems: dict[str, dict] = field(repr=False)  # "DS-1000/<problem_id>" -> row
    benchmark: str = "ds-1000"

    @property
    def version(self) -> str:
        return f"md5:{self.md5[:8]}"


def task_id(row: dict) -> str:
    return f"DS-1000/{row['metadata']['problem_id']}"


def load_ds1000(data_file: str | Path | None) -> DS1000Data:
    if not data_file:
        raise BuilderError(
            "ds-1000 needs --data-file: the release's test.jsonl(.gz) (xlangai/DS-1000)"
        )
    path = Path(data_file)
    raw = read_jsonl_bytes(path)
    problems = {}
    for number, line in enumerate(raw.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        missing = [k for k in ("prompt", "code_context", "metadata") if k not in row]
        if missing or "problem_id" not in row.get("metadata", {}):
            raise BuilderError(
                f"{path} line {number}: not a DS-1000 problem (no '{(missing or ['metadata.problem_id'])[0]}')"
            )
        problems[task_id(row)] = row
    return DS1000Data(path.resolve(), hashlib.md5(raw).hexdigest(), problems)


def postprocess(code: str) -> str:
    """DS-1000's cleanup of a completion: up to `</code>`, a closing fence or `END SOLUTION`."""
    code = code.split("</code>")[0].replace("```python", "")
    code = code.split("```")[0].split("\nEND SOLUTION")[0]
    return code.replace("<code>", "")


def harness_program(problem: dict, code: str) -> str:
    context = problem["code_context"]
    tail = "test_string(code)\n" if "test_string(" in context else "\n"
    return f"{context}\ncode = {code!r}\ntest_execution(code)\n{tail}"


def completion_prompt(problem: dict) -> tuple[str, str]:
    """(instruction, response prefix) for a DS-1000 prompt, in the published completion mode."""
    prompt = problem["prompt"]
    if "SOLUTION START" in prompt:  # Matplotlib: code, then a `# SOLUTION START` comment
        code = prompt[: prompt.rindex("# SOLUTION START")].strip()
        instruction = f"Write a solution to the following problem:\n```python\n{code}\n```"
        return instruction, f"```python\n{code}\n# Solution\n"
    cut = prompt.rindex("A:")
    answer = prompt[cut + 2 :].strip()
    instruction = prompt[:cut].strip().removeprefix("Problem:").strip()
    lines = answer.splitlines(keepends=True)
    if "### BEGIN SOLUTION" in prompt:  # a function to complete: its body starts the answer
        begin = lines[-1].replace("###", "#").replace("BEGIN SOLUTION", "Solution")
        response = "".join(lines[:-3]).strip() + f"\n{begin.rstrip()}\n"
    else:  # setup code, a `</code>`, the line saying where the result goes, BEGIN SOLUTION
        block_end, hint = lines[-4].strip(), lines[-3]
        if block_end == "</code>":
            prefix, hints = lines[:-4], [hint]
        elif len(lines) >= 6 and lines[-6].strip() == "</code>":
            prefix, hints = lines[:-6], lines[-5:-2]
        else:
            prefix, hints = lines[:-3], []
        response = (
            "".join([*prefix, *(f"# {h.lstrip()}" for h in hints)]).strip() + "\n# Solution\n"
        )
    fence = {"<code>": "```python", "</code>": "```"}
    for tag, mark in fence.items():
        instruction, response = instruction.replace(tag, mark), response.replace(tag, mark)
    return instruction, response


def library_paths() -> list[str]:
    """Directories holding the DS-1000 libraries installed here (for the sandbox's binds)."""
    paths = []
    for name in LIBRARIES:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            paths.append(str(Path(next(iter(spec.submodule_search_locations))).parent))
    return list(dict.fromkeys(paths))


@dataclass
class DS1000Verdict:
    task_id: str
    index: int
    code: str
    status: str  # the sandbox's: pass | fail | timeout | error
    error: str

    @property
    def passed(self) -> bool:
        return self.status == "pass"


def grade_ds1000(
    data: DS1000Data, samples, *, backend: str = "local", workers: int | None = None
) -> list[DS1000Verdict]:
    """One verdict per sample (`Sample.solution` is the raw completion; it is postprocessed)."""

    check_task_ids(samples, data.problems, "ds-1000", f" ({data.path.name})")
    codes = [postprocess(s.solution) for s in samples]
    programs = [Program(f"ds1000-{i}", harness_program(data.problems[s.task_id], code))
                for i, (s, code) in enumerate(zip(samples, codes))]  # fmt: skip
    limits = SandboxLimits(timeout_s=TIMEOUT_S, cpu_time_s=int(TIMEOUT_S))
    binds = SANDBOXES.load(backend).binds_host_python
    extra = {"python_paths": library_paths()} if binds else {}
    results = run_graded(programs, "DS-1000", backend, limits, workers, **extra)
    return [DS1000Verdict(s.task_id, s.index, code, r.status, r.error)
            for s, code, r in zip(samples, codes, results)]  # fmt: skip


@dataclass
class DS1000Result(GroupedScores):
    data: DS1000Data
    verdicts: list[DS1000Verdict]
    benchmark: ClassVar[str] = "ds-1000"

    def group_of(self, task_id: str) -> str | None:
        return self.data.problems[task_id]["metadata"].get("library")

    def rows(self) -> list[dict]:
        return [{
            "benchmark": "ds-1000", "task_id": v.task_id, "sample_index": v.index,
            "library": self.data.problems[v.task_id]["metadata"].get("library"),
            **(self.extras[i] if self.extras else {}),
            "code": v.code, "status": v.status, "passed": v.passed, "error": v.error,
        } for i, v in enumerate(self.verdicts)]  # fmt: skip
