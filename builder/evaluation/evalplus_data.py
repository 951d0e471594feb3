"""HumanEval+ and MBPP+ in EvalPlus's release format (jsonl or jsonl.gz), pinned or from a file.

The pinned versions ship in the package, `builder/data/benchmarks/` (see its README):
HumanEval+ v0.1.9 and MBPP+ v0.1.0. Any other release in the same format (e.g. the current
HumanEval+ v0.1.10 / MBPP+ v0.2.0 `*.jsonl.gz` from EvalPlus's releases) is read with
`data_file`. A dataset is identified, as EvalPlus identifies it, by the md5 of its uncompressed
jsonl text; that hash keys the ground-truth cache.

The rows are kept as parsed from JSON (the host only shows inputs, it never calls anything);
EvalPlus's MBPP input conversion (lists back to tuples, sets, complex numbers) is applied where
the inputs are used, in the ground-truth process (see `groundtruth`).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from builder.data import BENCHMARKS_DIR
from builder.errors import BuilderError

SHARED_DATA = BENCHMARKS_DIR  # the pinned files the package ships

# benchmark name -> (EvalPlus dataset kind, pinned file in SHARED_DATA)
EVALPLUS_BENCHMARKS: dict[str, tuple[str, str]] = {
    "humaneval+": ("humaneval", "HumanEvalPlus-v0.1.9.jsonl.gz"),
    "mbpp+": ("mbpp", "MbppPlus-v0.1.0.jsonl.gz"),
}
REQUIRED_KEYS = ("task_id", "prompt", "entry_point", "canonical_solution", "base_input",
                 "plus_input", "atol")  # fmt: skip


@dataclass
class EvalPlusData:
    benchmark: str  # humaneval+ | mbpp+
    dataset: str  # EvalPlus's name: humaneval | mbpp (selects its special oracles)
    path: Path
    md5: str  # of the uncompressed jsonl, as EvalPlus hashes it
    problems: dict[str, dict] = field(repr=False)  # task_id -> row, in file order

    @property
    def version(self) -> str:
        """'v0.1.9' from 'HumanEvalPlus-v0.1.9.jsonl.gz', else the md5's first digits."""
        stem = self.path.name.split(".jsonl")[0]
        _, _, tail = stem.rpartition("-v")
        return f"v{tail}" if tail and tail[0].isdigit() else f"md5:{self.md5[:8]}"


def read_jsonl_bytes(path: Path) -> bytes:
    """The uncompressed bytes of a jsonl or jsonl.gz file."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise BuilderError(f"cannot read benchmark data {path}: {err.strerror}") from None
    if path.name.endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise BuilderError(f"benchmark data {path} is not valid gzip: {err}") from None
    return raw


def load_evalplus(benchmark: str, data_file: str | Path | None = None) -> EvalPlusData:
    """The problems of `benchmark` (humaneval+ or mbpp+), from `data_file` or the pinned copy."""
    if benchmark not in EVALPLUS_BENCHMARKS:
        known = ", ".join(EVALPLUS_BENCHMARKS)
        raise BuilderError(f"unknown EvalPlus benchmark '{benchmark}' (known: {known})")
    dataset, pinned = EVALPLUS_BENCHMARKS[benchmark]
    path = Path(data_file) if data_file else SHARED_DATA / pinned
    if not data_file and not path.is_file():
        raise BuilderError(
            f"the pinned {benchmark} data is not at {path}; pass --data-file with a copy of "
            f"{pinned} (EvalPlus release format, jsonl or jsonl.gz)"
        )
    raw = read_jsonl_bytes(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BuilderError(f"benchmark data {path} is not UTF-8 text") from None
    problems: dict[str, dict] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise BuilderError(f"{path} line {number}: not JSON ({err.msg})") from None
        missing = [k for k in REQUIRED_KEYS if k not in row]
        if missing:
            raise BuilderError(
                f"{path} line {number}: not an EvalPlus problem (no '{missing[0]}' field)"
            )
        problems[row["task_id"]] = row
    if not problems:
        raise BuilderError(f"{path} holds no problems")
    md5 = hashlib.md5(raw).hexdigest()
    return EvalPlusData(benchmark, dataset, path.resolve(), md5, problems)


def deserialize_inputs(dataset: str, task_id: str, inputs: list) -> list:
    """The inputs as EvalPlus passes them to functions (MBPP: its tuple/set/complex fixes)."""
    if dataset != "mbpp":
        return inputs
    from evalplus.data.mbpp import mbpp_deserialize_inputs

    return mbpp_deserialize_inputs(task_id, inputs)
