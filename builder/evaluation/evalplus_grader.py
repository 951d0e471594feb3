"""Grade EvalPlus samples in a sandbox, with `evalplus.evaluate`'s verdicts.

Design (see `_evalplus_driver.py` for the sandbox side):
- The host computes the ground truth once (`groundtruth`), then packs samples into sandbox
  programs: each program is the driver plus a payload naming the task files and the samples'
  code. A program imports numpy and EvalPlus once and then runs EvalPlus's own
  `untrusted_check` per sample and test set, each in a process forked from the driver, with
  EvalPlus's per-input time limits and overall timeout. So the comparison (== , float
  tolerance, special oracles, fast-check early exit) is EvalPlus's code running next to the
  untrusted code, and what crosses back to the host is one JSON line per check: status and
  per-input pass flags, which the host checks strictly before using.
- Programs hold samples worth about 1/4 of a worker's share of the work (estimated from the
  canonical solutions' times) and are queued longest first, so both cores stay busy and the
  driver's imports are paid a few times per benchmark, not once per sample.
- Plus tests are skipped after a base failure by default: the "plus" verdict (base and plus
  both pass, as in EvalPlus) and every pass@k are unchanged, only the plus status is unknown.

A grading program that dies before reporting every check (only a program that attacks the
harness can make it) has its unreported samples re-run one per program; a sample that still
gets no report fails, with the sandbox's error as detail.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import math
import os
import pickle
import secrets
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from builder.errors import BuilderError
from builder.evaluation.evalplus_data import EvalPlusData
from builder.evaluation.grading import check_task_ids
from builder.evaluation.groundtruth import GroundTruth, ensure_groundtruth
from builder.evaluation.verdicts import Check, GradeOptions, Sample, SampleVerdict
from builder.registry import SANDBOXES
from builder.sandbox import Program, SandboxLimits, get_sandbox

log = logging.getLogger(__name__)

DRIVER = (Path(__file__).with_name("_evalplus_driver.py")).read_text()
PRIVATE_DIRS = ("/tmp", "/dev/shm")  # the sandboxes mount their own tmpfs there: binds vanish
STATUSES = ("pass", "fail", "timeout")
MAX_SAMPLES_PER_PROGRAM = 64
PROGRAM_MARGIN_S = 60.0  # imports, loading task files, forks: on top of the checks' own bounds
OUTPUT_BYTES = 8 << 20
EMBED_LIMIT = 16 << 20  # task files larger than this are never put in a program's text


def grade(
    data: EvalPlusData,
    samples: Sequence[Sample],
    *,
    backend: str = "local",
    workers: int | None = None,
    options: GradeOptions | None = None,
    cache_dir: Path,
) -> list[SampleVerdict]:
    """One verdict per sample, in input order."""
    options = options or GradeOptions()
    if not samples:
        return []
    check_task_ids(samples, data.problems, data.benchmark, f" ({data.path.name})")
    task_ids = list(dict.fromkeys(s.task_id for s in samples))
    truth = ensure_groundtruth(data, task_ids, cache_dir)
    workers = workers or len(os.sched_getaffinity(0))
    groups = _plan(list(enumerate(samples)), truth, options, workers)
    checks = _run_programs(data, truth, groups, options, backend, workers)
    lost = [(k, s) for k, s in enumerate(samples) if not _complete(checks.get(k), options)]
    if lost:
        log.warning("%d samples lost their grading program; re-running them one by one", len(lost))
        checks.update(
            _run_programs(data, truth, [[item] for item in lost], options, backend, workers)
        )
    return [_verdict(k, s, checks.get(k, {}), options) for k, s in enumerate(samples)]


def check_time_bound(times: list[float], options: GradeOptions) -> float:
    """How long EvalPlus lets one check run at most: its per-task timeout, join and kill."""
    limits = [max(options.min_time_limit, options.gt_time_limit_factor * t) for t in times]
    timeout = min(60, sum(limits)) + 1 + (0 if options.fast_check else 1)
    return timeout + 1 + 0.2


def _sample_bound(truth: GroundTruth, task_id: str, options: GradeOptions) -> float:
    times = truth.times[task_id]
    parts = ["base_time"] if options.base_only else ["base_time", "plus_time"]
    return sum(check_time_bound(times[p], options) for p in parts)


def _plan(items, truth: GroundTruth, options: GradeOptions, workers: int) -> list[list]:
    """Consecutive samples in programs of about a quarter of a worker's share (a sample that
    costs more gets a program of its own), queued longest first."""
    cost = {t: truth.cost(t) + 0.02 for t in truth.times}
    total = sum(cost[s.task_id] for _, s in items)
    target = max(total / (workers * 4), 0.5)
    programs, current, current_cost = [], [], 0.0
    for key, sample in items:
        sample_cost = cost[sample.task_id]
        full = len(current) >= MAX_SAMPLES_PER_PROGRAM or current_cost + sample_cost > target * 1.25
        if current and full:
            programs.append((current_cost, current))
            current, current_cost = [], 0.0
        current.append((key, sample))
        current_cost += sample_cost
    if current:
        programs.append((current_cost, current))
    programs.sort(key=lambda p: -p[0])
    return [p for _, p in programs]


def _payload(data, truth, program, options, marker, embed: bool) -> str:
    groups: list[dict] = []
    for key, sample in program:
        if not groups or groups[-1]["task_id"] != sample.task_id:
            path = truth.task_path(sample.task_id)
            if embed and path.stat().st_size > EMBED_LIMIT:
                raise BuilderError(
                    f"{sample.task_id}: its ground truth ({path.stat().st_size >> 20} MiB) is too "
                    "large to travel inside a program; use a --cache-dir outside /tmp so that the "
                    "sandbox can bind it"
                )
            spec = (
                {"blob": base64.b64encode(path.read_bytes()).decode()}
                if embed
                else {"path": str(path)}
            )
            groups.append({"task_id": sample.task_id, "task": spec, "samples": []})
        groups[-1]["samples"].append((key, sample.solution))
    payload = {
        "dataset": data.dataset,
        "marker": marker,
        "fix_find_zero": options.fix_find_zero,
        "options": dataclasses.asdict(options),
        "groups": groups,
    }
    return base64.b64encode(pickle.dumps(payload, pickle.HIGHEST_PROTOCOL)).decode()


def _evalplus_paths() -> list[str]:
    """Where evalplus and what its `eval` module imports live, to bind into the sandbox."""
    import importlib.util

    paths = []
    for name in ("evalplus", "numpy", "psutil"):
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise BuilderError(
                f"grading EvalPlus needs the '{name}' package: pip install evalplus==0.3.1"
            )
        paths.append(str(Path(next(iter(spec.submodule_search_locations))).parent))
    return list(dict.fromkeys(paths))


def _open_sandbox(backend: str, truth: GroundTruth, programs, options, workers: int):
    bound = max(sum(_sample_bound(truth, s.task_id, options) for _, s in p) for p in programs)
    timeout = bound + PROGRAM_MARGIN_S
    limits = SandboxLimits(
        timeout_s=timeout, cpu_time_s=math.ceil(timeout),
        max_output_bytes=OUTPUT_BYTES, keep_output_bytes=OUTPUT_BYTES,
    )  # fmt: skip
    extra = {}
    if SANDBOXES.load(backend).binds_host_python:
        extra["python_paths"] = [*_evalplus_paths()]
        if _can_bind(backend, truth.folder):
            extra["python_paths"].append(str(truth.folder))
    return get_sandbox(backend, limits=limits, workers=min(workers, len(programs)), **extra)


def _can_bind(backend: str, folder: Path) -> bool:
    """Whether the task files can reach the sandbox as a read-only bound directory; if not,
    each program carries its tasks' files in its text (fine for small tasks only)."""
    real = os.path.realpath(folder)
    private = any(real == d or real.startswith(d + "/") for d in PRIVATE_DIRS)
    return SANDBOXES.load(backend).binds_host_python and not private


def _run_programs(data, truth, programs, options, backend, workers) -> dict[int, dict[str, Check]]:
    from tqdm.auto import tqdm


    marker = f"@evalplus-{secrets.token_hex(8)}"
    embed = not _can_bind(backend, truth.folder)
    codes = [
        Program(
            f"evalplus-{i}",
            f"{DRIVER}\n\nmain({_payload(data, truth, p, options, marker, embed)!r})\n",
        )
        for i, p in enumerate(programs)
    ]
    checks: dict[int, dict[str, Check]] = {}
    samples = sum(len(p) for p in programs)
    with (
        _open_sandbox(backend, truth, programs, options, workers) as sandbox,
        tqdm(
            total=samples,
            desc=f"grade {data.benchmark}",
            unit="sample",
            mininterval=1.0,
            leave=False,
        ) as bar,
        ThreadPoolExecutor(max(1, sandbox_workers(sandbox, workers))) as pool,
    ):
        futures = [pool.submit(sandbox.run, [code]) for code in codes]  # longest first
        for program, future in zip(programs, futures):
            result = future.result()[0]
            if result.status == "infra_error":
                raise BuilderError(f"the {backend} sandbox failed while grading: {result.error}")
            got, ready = _parse_report(result.stdout, marker, {k for k, _ in program})
            if not ready:  # the sandbox cannot grade at all: never a verdict on the samples
                tail = (result.stderr.strip().splitlines() or [result.error])[-1]
                raise BuilderError(f"EvalPlus cannot run in the {backend} sandbox: {tail}")
            for key, _ in program:
                checks.setdefault(key, {}).update(got.get(key, {}))
                if result.status != "pass":
                    checks[key].setdefault(
                        "_error", Check("fail", "", f"{result.status}: {result.error}")
                    )
            bar.update(len(program))
    return checks


def sandbox_workers(sandbox, default: int) -> int:
    return getattr(sandbox, "workers", default) * 2  # keep every worker's queue fed


def _parse_report(
    stdout: str, marker: str, keys: set[int]
) -> tuple[dict[int, dict[str, Check]], bool]:
    """The driver's lines, and whether it got as far as grading (EvalPlus imported); anything
    malformed or about another sample is ignored."""
    got: dict[int, dict[str, Check]] = {}
    ready = False
    for line in stdout.splitlines():
        if not line.startswith(marker + " "):
            continue
        try:
            entry = json.loads(line[len(marker) + 1 :])
            if entry == {"ready": True}:
                ready = True
                continue
            key, part, status, details = entry["k"], entry["p"], entry["s"], entry["d"]
        except (ValueError, KeyError, TypeError):
            continue
        valid = (key in keys and part in ("base", "plus") and status in STATUSES
                 and isinstance(details, str) and set(details) <= {"0", "1"})  # fmt: skip
        if valid:
            got.setdefault(key, {})[part] = Check(status, details)
    return got, ready


def _complete(checks: dict | None, options: GradeOptions) -> bool:
    if not checks or "base" not in checks:
        return False
    if options.base_only:
        return True
    base_failed = checks["base"].status != "pass"
    return "plus" in checks or (base_failed and options.skip_plus_on_base_fail)


def _verdict(key: int, sample: Sample, checks: dict, options: GradeOptions) -> SampleVerdict:
    died = checks.get("_error", Check("fail", "", "the grading program reported nothing"))
    base = checks.get("base", died)
    plus = None
    if not options.base_only and not (base.status != "pass" and options.skip_plus_on_base_fail):
        plus = checks.get("plus", died)
    return SampleVerdict(sample, base, plus)
