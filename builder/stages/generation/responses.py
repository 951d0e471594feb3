"""`responses` (I->R): n sampled responses per instruction, each with its own tests.

A response has four parts, each opened by its tag on its own line: `[Reasoning]`,
`[Implementation]` (a python code block), `[Explanation]` and `[Tests]` (a python code block of
asserts that call the implementation). Every sample becomes one row, kept or dropped, with the
instruction's id and its `sample_index`; nothing is merged or silently lost. A sample is dropped
when it was cut off by max_tokens (`truncated`), lacks a part (`missing_tests`, ...), has no
code block, code that does not parse, tests without an assert, or tests that call nothing the
implementation defines. Whether the tests pass is the `execute` stage's business.
"""

from __future__ import annotations

from dataclasses import dataclass

from builder.engines.generator import PromptSpec
from builder.pipeline.rows import ChunkResult, Drop, Row
from builder.stages.generation.base import GenerationStage
from builder.stages.generation.library import fewshot_examples
from builder.stages.generation.params import GenerationParams
from builder.stages.generation.parse import parse_response
from builder.stages.generation.prompting import STOP, response_prompt

_PARTS = ("reasoning", "implementation", "explanation", "tests")


@dataclass
class ResponsesParams(GenerationParams):
    n: int = 10
    temperature: float = 0.7
    max_tokens: int = 1536
    num_fewshots: int = 1


class ResponsesStage(GenerationStage):
    name = "responses"
    params_class = ResponsesParams
    reads = ("instruction_id", "instruction")
    adds = ("response_id", "sample_index", "response", "finish_reason", *_PARTS)
    description = "Sampled responses to each instruction, each with reasoning, code and tests."
    chunk_size = 256  # x n samples: 2,560 sequences per chunk at the published n=10
    single_sample = False
    stop = STOP

    def rows_out(self, rows_in: int) -> int:
        return rows_in * self.params.n  # every sample is a row, kept or dropped

    def process(self, rows: list[Row]) -> ChunkResult:
        examples, k, n = fewshot_examples(), self.params.num_fewshots, self.params.n
        prompts = [
            PromptSpec(
                response_prompt(
                    row["instruction"], examples, k, self.row_rng(row["instruction_id"])
                ),
                n,
                self.row_seed(row["instruction_id"]),
            )
            for row in rows
        ]
        results, stats = self.generate(prompts)
        result = ChunkResult(stats=stats)
        for row, completions in zip(rows, results):
            for index, completion in enumerate(completions):
                out = {
                    **row,
                    "response_id": f"{row['instruction_id']}-{index}",
                    "sample_index": index,
                    "response": completion.text,
                    "finish_reason": completion.finish_reason,
                    **dict.fromkeys(_PARTS),
                }
                failure = self.failure(completion)
                parsed = parse_response(completion.text) if failure is None else None
                if failure is None and not parsed.ok:
                    failure = (parsed.error, parsed.detail)
                if failure is not None:
                    result.dropped.append(Drop(out, *failure))
                    continue
                result.kept.append({**out, **{p: getattr(parsed.value, p) for p in _PARTS}})
        return result

    def method_notes(self) -> str:
        return (
            "Each instruction is asked for n samples in one request (sample i with seed + i). "
            "`response` is the raw text; `implementation` and `tests` are the code of their "
            "parts' code blocks (all blocks of [Tests], joined), ready for `execute`."
        )
