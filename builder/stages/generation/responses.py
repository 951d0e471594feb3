"""`responses` (I->R): n sampled responses per instruction, each with its own tests.

A response has four parts, each opened by its tag on its own line: `[Reasoning]`,
`[Implementation]` (a python code block), `[Explanation]` and `[Tests]` (a python code block of
asserts that call the implementation). In chat mode, where instruct models answer in their own
way, a response without the four tags is read as prose and code blocks (`parse.parse_response`).
Every sample becomes one row, kept or dropped, with the instruction's id and its
`sample_index`; nothing is merged or silently lost. A sample is dropped when it was cut off by
max_tokens (`truncated`, or `runaway_repetition` when its end is a loop), lacks a part
(`missing_tests`, ...; in chat mode `no_code_block`, `no_test_block`), has code that does not
parse, tests without an assert, or tests that call nothing the implementation defines. Whether
the tests pass is the `execute` stage's business.
"""

from __future__ import annotations

from dataclasses import dataclass

from builder.engines.generator import PromptSpec
from builder.pipeline.rows import ChunkResult, Drop, Row
from builder.stages.generation.base import GenerationStage
from builder.stages.generation.library import fewshot_examples
from builder.stages.generation.params import GenerationParams
from builder.stages.generation.parse import parse_response, repair_response
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
    adds = (
        "response_id", "sample_index", "response", "finish_reason", *_PARTS,
        "response_format", "repairs",
    )  # fmt: skip
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
                self.render(
                    response_prompt(
                        row["instruction"],
                        examples,
                        k,
                        self.row_rng(row["instruction_id"]),
                        self.chat,
                    )
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
                    "response_format": None,
                    "repairs": [],
                }
                failure = self.failure(completion)
                if failure is not None:
                    result.dropped.append(Drop(out, *failure))
                    continue
                text, repairs = repair_response(completion.text)
                parsed = parse_response(text, untagged=self.chat)
                if not parsed.ok:  # the raw text is kept, unrepaired
                    result.dropped.append(Drop(out, parsed.error, parsed.detail))
                    continue
                parts = parsed.value
                repairs = [*repairs, *parts.repairs]
                for repair in repairs:
                    result.stats[f"repaired_{repair}"] += 1
                result.stats[f"format_{parts.format}"] += 1
                result.kept.append({
                    **out,
                    "response": text,
                    **{p: getattr(parts, p) for p in _PARTS},
                    "response_format": parts.format,
                    "repairs": repairs,
                })  # fmt: skip
        return result

    def method_notes(self) -> str:
        untagged = (
            " In chat mode a response without the four tags is read as prose and code blocks "
            "(`response_format: untagged`): the last block with an assert is the tests, the "
            "first block before it that defines something the implementation; one block with "
            "both is split at its first top-level assert (`split_single_block`)."
            if self.chat
            else ""
        )
        return (
            "Each instruction is asked for n samples in one request (sample i with seed + i). "
            "`response` is the text (kept rows: with the repairs listed in `repairs`, e.g. "
            "`closed_final_fence`, a last code block left open at the end, closed; dropped "
            "rows: raw); `implementation` and `tests` are the code of their parts' code blocks "
            "(all blocks of [Tests], joined), ready for `execute`." + untagged
        )
