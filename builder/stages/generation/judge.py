"""`judge`: the base model decides whether a seed's docstring is good enough to keep it.

A few-shot prompt shows functions with a Yes or No verdict on one question: could the function
be re-implemented from its signature and docstring alone? Greedy decoding, a few tokens, one
line. Yes keeps the function; No drops it as `judge_no`, and an answer that is neither (or a
request that failed) drops it as `judge_unclear` (or the engine's reason). The raw answer is
kept in `judge_answer` either way.
"""

from __future__ import annotations

from dataclasses import dataclass

from builder.engines.generator import PromptSpec
from builder.pipeline.rows import ChunkResult, Drop, Row
from builder.stages.generation.base import GenerationStage
from builder.stages.generation.library import judge_examples
from builder.stages.generation.params import GenerationParams
from builder.stages.generation.parse import parse_judge
from builder.stages.generation.prompting import JUDGE_STOP, judge_prompt


@dataclass
class JudgeParams(GenerationParams):
    n: int = 1
    temperature: float = 0.0
    max_tokens: int = 8
    num_fewshots: int = 8


class JudgeStage(GenerationStage):
    name = "judge"
    params_class = JudgeParams
    reads = ("id", "function")
    adds = ("judge_answer", "judge_verdict")
    description = "Seeds whose docstring the base model judges sufficient to re-implement them."

    stop = JUDGE_STOP

    def process(self, rows: list[Row]) -> ChunkResult:
        examples = judge_examples()
        prompts = [
            PromptSpec(
                judge_prompt(
                    row["function"], examples, self.params.num_fewshots, self.row_rng(row["id"])
                ),
                1,
                self.row_seed(row["id"]),
            )
            for row in rows
        ]
        results, stats = self.generate(prompts)
        result = ChunkResult(stats=stats)
        for row, (completion,) in zip(rows, results):
            answer = completion.text.strip()
            if not completion.ok:
                out = {**row, "judge_answer": answer, "judge_verdict": None}
                result.dropped.append(
                    Drop(out, completion.error_kind or "engine_error", completion.error)
                )
                continue
            parsed = parse_judge(completion.text)
            out = {**row, "judge_answer": answer, "judge_verdict": parsed.value}
            if parsed.value == "yes":
                result.kept.append(out)
            elif parsed.value == "no":
                result.dropped.append(Drop(out, "judge_no", "the model answered No"))
            else:
                result.dropped.append(Drop(out, parsed.error, parsed.detail))
        return result

    def method_notes(self) -> str:
        return (
            "The judge answers one line; its first word decides: Yes keeps the seed, No drops "
            "it (`judge_no`), anything else drops it as `judge_unclear`. `judge_answer` holds "
            "the raw answer."
        )
