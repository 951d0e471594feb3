"""`select`: from every executed response sample to the final SFT pairs.

A sample is a candidate when it passed its own tests and its response has the four parts in
order with exactly one tests block that asserts on the implementation, and no sign of being
unfinished (todo, fixme, "your code here"). Then, across the whole dataset (in `finalize`):
identical responses (after whitespace normalisation) are kept once; samples are grouped by
their whitespace-normalised instruction, so the same task under two ids is one task; and the
`policy` decides what is kept of each task:

- `random_one` (the published default): one candidate per task, chosen at random with `seed`.
  The choice ranks candidates by a hash of (seed, task, sample), so it does not depend on
  chunking and needs one row per task in memory.
- `all_passing`: every candidate (several correct solutions per task; duplicates still go).
- `strongest_tests`: one candidate per task, the one whose tests caught the most mutants
  (`test_strength` from `mutate`; ties and unmeasured samples decided as `random_one` does).

Two thresholds apply first, whatever the policy: with `min_task_pass_rate` above 0, a candidate
whose task passed less often than that (`task_pass_rate` from `execute`: passed samples /
samples) is dropped (`task_pass_rate_below_min`); with `min_test_strength` above 0, one whose
tests caught a smaller share of mutants, or were not measured, is dropped
(`test_strength_below_min`).

Published columns: `instruction`, `response`, `messages` (user/assistant, for TRL's SFTTrainer)
and every input column for lineage back to the seed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from builder.config.fields import added_later, bounded
from builder.pipeline.rows import ChunkResult, Drop, Row, RowStage
from builder.pipeline.step import StepParams
from builder.stages.execute.figures import PolicyCounts
from builder.stages.generation.parse import parse_response
from builder.stages.select.sft_format import (
    normalise,
    remove_tests_section,
    remove_untagged_tests,
    strip_comments_in_blocks,
)

_RANK = "_select_rank"
_GROUP = "_select_group"


@dataclass
class SelectParams(StepParams):
    seed: int = bounded(0, ge=0)
    strip_comments: bool = False
    remove_tests: bool = False
    incomplete_markers: list[str] = field(
        default_factory=lambda: ["todo", "fixme", "your code here"]
    )
    policy: Literal["random_one", "all_passing", "strongest_tests"] = added_later("random_one")
    min_task_pass_rate: float = added_later(0.0, ge=0, le=1)  # needs execute's task_pass_rate
    min_test_strength: float = added_later(0.0, ge=0, le=1)  # needs mutate's test_strength


class SelectStage(RowStage):
    name = "select"
    params_class = SelectParams
    reads = ("instruction", "response", "exec_status")
    adds = ("instruction", "response", "messages")
    chunk_size = 4096
    description = "Passing, well-formed responses (one per instruction by default): SFT pairs."

    params: SelectParams

    def __init__(self, params: SelectParams, context=None):
        super().__init__(params, context)
        if params.min_task_pass_rate > 0:
            self.reads = (*self.reads, "task_pass_rate")
        if params.min_test_strength > 0 or params.policy == "strongest_tests":
            self.reads = (*self.reads, "test_strength")
        self._counts = PolicyCounts()

    def process(self, rows: list[Row]) -> ChunkResult:
        result = ChunkResult()
        for row in rows:
            reason, detail = self._reject_reason(row)
            if reason:
                result.dropped.append(Drop(row, reason, detail))
                continue
            group = normalise(row["instruction"])
            sample = f"{normalise(row['response'])}"
            rank = hashlib.sha256(f"{self.params.seed}\0{group}\0{sample}".encode()).hexdigest()
            result.kept.append({**row, _GROUP: group, _RANK: rank})
        return result

    def _reject_reason(self, row: Row) -> tuple[str, str]:
        if row["exec_status"] != "pass":
            return "not_passed", f"{row['exec_status']}: {row.get('exec_error') or ''}"[:200]
        minimum = self.params.min_task_pass_rate
        if minimum > 0 and row["task_pass_rate"] < minimum:
            return "task_pass_rate_below_min", f"{row['task_pass_rate']:.2f} < {minimum:g}"
        least = self.params.min_test_strength
        if least > 0 and (row["test_strength"] is None or row["test_strength"] < least):
            why = row.get("mutation_skipped") or "not measured"
            strength = why if row["test_strength"] is None else f"{row['test_strength']:.2f}"
            return "test_strength_below_min", f"{strength} < {least:g}"
        response = row["response"] or ""
        parsed = parse_response(response, untagged=_untagged(row))
        if not parsed.ok:
            return f"malformed_{parsed.error}", parsed.detail
        tests_section = response.split("[Tests]", 1)[-1]
        if parsed.value.format == "tagged" and tests_section.count("```") != 2:
            return "malformed_tests_blocks", "the tests are not exactly one code block"
        lowered = response.lower()
        marker = next((m for m in self.params.incomplete_markers if m.lower() in lowered), None)
        if marker:
            return "incomplete", f"contains {marker!r}"
        return "", ""

    def rows_follow(self) -> str | None:
        return None if self.params.policy == "all_passing" else "instructions"  # one per task

    def figures(self) -> list[dict]:
        return [self._counts.figure(self.params.policy)]

    def finalize(self, rows: Iterable[Row]) -> Iterator[Row | Drop]:
        self._counts = PolicyCounts()
        responses_seen: set[str] = set()
        chosen: dict[str, Row] = {}  # task -> its best-ranked candidate so far, in first-seen order
        for row in rows:
            key = hashlib.sha256(normalise(row["response"]).encode()).hexdigest()
            if key in responses_seen:
                yield Drop(_public(row), "duplicate_response", "same response as an earlier sample")
                continue
            responses_seen.add(key)
            self._counts.add(row[_GROUP], row.get("test_strength"), row.get("task_pass_rate"))
            if self.params.policy == "all_passing":
                yield self._sft_row(_public(row))
                continue
            best = chosen.get(row[_GROUP])
            if best is None:
                chosen[row[_GROUP]] = row
                continue
            loser = row if self._order(row) >= self._order(best) else best
            if loser is best:
                chosen[row[_GROUP]] = row
            yield Drop(
                _public(loser), "not_chosen", "another passing sample was chosen for this task"
            )
        for row in chosen.values():
            yield self._sft_row(_public(row))

    def _order(self, row: Row) -> tuple:
        """How candidates of one task rank (the smallest is kept)."""
        if self.params.policy == "strongest_tests":
            strength = row["test_strength"]
            return (-1.0 if strength is None else -strength, row[_RANK])
        return (row[_RANK],)

    def _sft_row(self, row: Row) -> Row:
        response = row["response"]
        if self.params.remove_tests and _untagged(row):
            response = remove_untagged_tests(response, parse_response(response, True).value)
        elif self.params.remove_tests:
            response = remove_tests_section(response)
        if self.params.strip_comments:
            response = strip_comments_in_blocks(response)
        messages = [
            {"role": "user", "content": row["instruction"]},
            {"role": "assistant", "content": response},
        ]
        return {**row, "response": response, "messages": messages}

    def card_notes(self) -> str:
        flags = (
            f"strip_comments={self.params.strip_comments}, remove_tests={self.params.remove_tests}"
        )
        p = self.params
        which = {
            "random_one": f"One response per task, chosen at random with seed {p.seed} among",
            "all_passing": "Every distinct response of",
            "strongest_tests": "One response per task, the one whose tests caught the most "
            "mutants (`test_strength`), among",
        }[p.policy]
        rate = (
            f", of tasks whose samples passed at least {p.min_task_pass_rate:g} of the time "
            "(`task_pass_rate`)" if p.min_task_pass_rate > 0 else ""
        )  # fmt: skip
        if p.min_test_strength > 0:
            rate += f", whose tests caught at least {p.min_test_strength:g} of their mutants"
        return (
            f"Policy `{p.policy}`. {which} the samples that passed their own tests and are well "
            f"formed{rate} ({flags}). The drop counts above say how many rows each rule "
            "removed. `messages` is ready for TRL's SFTTrainer."
        )


def _untagged(row: Row) -> bool:
    """A response read as prose and code blocks (chat mode), not by its four tags."""
    return row.get("response_format") == "untagged"


def _public(row: Row) -> Row:
    return {k: v for k, v in row.items() if k not in (_RANK, _GROUP)}
