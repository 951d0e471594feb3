"""What the graders of DS-1000, LiveCodeBench and EvalPlus share around their own checks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from builder.errors import BuilderError
from builder.sandbox import get_sandbox


def check_task_ids(samples, problems: Mapping, benchmark: str, where: str = "") -> None:
    """A one-line error naming the first task of `samples` that `problems` lacks."""
    unknown = sorted({s.task_id for s in samples} - problems.keys())
    if unknown:
        raise BuilderError(f"{benchmark} has no task '{unknown[0]}'{where}")


def run_graded(programs: Sequence, benchmark: str, backend: str, limits, workers: int | None,
               **sandbox_options) -> list:
    """The sandbox's result of each program, in order. A program the sandbox itself failed on
    (infra_error) has no verdict to give: the run stops with a one-line error."""

    with get_sandbox(backend, limits=limits, workers=workers, **sandbox_options) as sandbox:
        results = sandbox.run(programs)
    failed = next((r for r in results if r.status == "infra_error"), None)
    if failed is not None:
        raise BuilderError(f"the {backend} sandbox failed while grading {benchmark}: {failed.error}")
    return results
