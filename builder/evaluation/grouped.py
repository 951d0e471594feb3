"""What the DS-1000 and LiveCodeBench results share: pass@k overall and per group of tasks
(DS-1000's library, LiveCodeBench's difficulty), the verdict table and the printed lines."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, ClassVar

from builder.evaluation.passk import pass_at_k


@dataclass
class GroupedScores:
    """A result with `data` (`.version`, `.md5`, `.problems`), `verdicts` (each with `task_id`
    and `passed`), the grading settings and the generation's extras per sample; subclasses
    name their `benchmark` and say which group a task belongs to."""

    data: Any
    verdicts: list
    settings: dict = field(default_factory=dict)
    extras: list[dict] | None = None
    benchmark: ClassVar[str] = ""

    def group_of(self, task_id: str) -> str | None:
        raise NotImplementedError

    @property
    def version(self) -> str:
        return self.data.version

    @property
    def data_md5(self) -> str:
        return self.data.md5

    @property
    def tasks(self) -> int:
        return len({v.task_id for v in self.verdicts})

    def _counts(self, group: str | None = None) -> list[tuple[int, int]]:
        per_task: dict[str, Counter] = defaultdict(Counter)
        for v in self.verdicts:
            if group is None or self.group_of(v.task_id) == group:
                per_task[v.task_id]["n"] += 1
                per_task[v.task_id]["c"] += v.passed
        return [(c["n"], c["c"]) for c in per_task.values()]

    def scores(self) -> dict[str, dict[str, float]]:
        groups = sorted({self.group_of(v.task_id) or "?" for v in self.verdicts})
        return {
            "score": pass_at_k(self._counts()),
            **{g: pass_at_k(self._counts(g)) for g in groups},
        }

    def verdict_table(self) -> dict:
        """{task_id: "pass"|"fail"}; a list of those for tasks with several samples."""
        table: dict[str, list[str]] = defaultdict(list)
        for v in self.verdicts:
            table[v.task_id].append("pass" if v.passed else "fail")
        return {t: e[0] if len(e) == 1 else e for t, e in table.items()}

    def format(self) -> str:
        return "\n".join(
            f"{self.benchmark} {key}: " + ", ".join(f"{k} {v:.3f}" for k, v in m.items())
            for key, m in self.scores().items()
        )
