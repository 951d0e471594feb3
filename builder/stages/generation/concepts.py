"""`concepts` (S->C): the base model lists the programming concepts of each seed function.

The answer is one line of comma-separated concepts; it becomes the list `concepts`. An answer
cut off by max_tokens is dropped as `truncated`, and one with no concepts, or with a "concept"
too long to be one, as `empty` or `malformed_concepts`.
"""

from __future__ import annotations

from dataclasses import dataclass

from builder.engines.generator import PromptSpec
from builder.pipeline.rows import ChunkResult, Drop, Row
from builder.stages.generation.base import GenerationStage, completion_row
from builder.stages.generation.library import fewshot_examples
from builder.stages.generation.params import GenerationParams
from builder.stages.generation.parse import parse_concepts
from builder.stages.generation.prompting import STOP, concepts_prompt


@dataclass
class ConceptsParams(GenerationParams):
    n: int = 1
    temperature: float = 0.7
    max_tokens: int = 1536
    num_fewshots: int = 8


class ConceptsStage(GenerationStage):
    name = "concepts"
    params_class = ConceptsParams
    reads = ("id", "function")
    adds = ("concepts", "concepts_raw")
    description = "The programming concepts of each seed function, as the base model lists them."

    stop = STOP

    def process(self, rows: list[Row]) -> ChunkResult:
        examples = fewshot_examples()
        k = self.params.num_fewshots
        prompts = [
            PromptSpec(
                self.render(
                    concepts_prompt(
                        row["function"], examples, k, self.row_rng(row["id"]), self.chat
                    )
                ),
                1,
                self.row_seed(row["id"]),
            )
            for row in rows
        ]
        results, stats = self.generate(prompts)
        result = ChunkResult(stats=stats)
        for row, (completion,) in zip(rows, results):
            failure = self.failure(completion)
            parsed = parse_concepts(completion.text) if failure is None else None
            if failure is not None and failure[0] == "truncated":
                parsed = answer_before_truncation(completion.text)
                if parsed is not None:  # the line was complete; what followed was cut off
                    failure = None
                    result.stats["repaired_answer_before_truncation"] += 1
            if failure is None and not parsed.ok:
                failure = (parsed.error, parsed.detail)
            raw = {"concepts_raw": completion.text}
            if failure is not None:
                out = {**row, "concepts": None, **raw, **completion_row(completion)}
                result.dropped.append(Drop(out, *failure))
                continue
            result.kept.append({**row, "concepts": parsed.value, **raw})
        return result

    def method_notes(self) -> str:
        return (
            "The seed is shown as `### Snippet` in a python code block and the model answers "
            "under `### Concepts`; its first paragraph, split at commas, is `concepts`. An "
            "answer cut off by max_tokens whose first line was complete (the model went on "
            "after it) keeps that line (`repaired_answer_before_truncation`). `concepts_raw` "
            "is the model's text."
        )


def answer_before_truncation(text: str):
    """The concepts of a truncated answer's first line, when that line ended before the cut
    and parses; None otherwise."""
    first, newline, _ = text.strip().partition("\n")
    if not newline:
        return None
    parsed = parse_concepts(first)
    return parsed if parsed.ok else None
