"""`instructions` (C->I): from a seed's concepts, the base model writes one coding task.

Each row draws a property with its own seed: a category, a language and a difficulty from
`builder/prompts/properties.yaml` (published run: function, class or program implementation;
Python; medium or hard), plus the row's concepts. The model writes the task under
`### Instruction`. Cut off by max_tokens: `truncated`; nothing written: `empty`; fewer than five
words: `too_short`. `instruction_id` is a hash of the seed's id and the instruction.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from builder.engines.generator import PromptSpec
from builder.pipeline.rows import ChunkResult, Drop, Row
from builder.stages.generation.base import GenerationStage, completion_row
from builder.stages.generation.library import fewshot_examples, properties
from builder.stages.generation.params import GenerationParams
from builder.stages.generation.parse import parse_instruction
from builder.stages.generation.prompting import STOP, instruction_prompt, sample_property


@dataclass
class InstructionsParams(GenerationParams):
    n: int = 1
    temperature: float = 0.7
    max_tokens: int = 1536
    num_fewshots: int = 8


class InstructionsStage(GenerationStage):
    name = "instructions"
    params_class = InstructionsParams
    reads = ("id", "concepts")
    adds = (
        "instruction_id", "instruction", "category", "language", "difficulty", "instruction_raw",
    )  # fmt: skip
    description = "Self-contained coding tasks the base model wrote from the concepts of a seed."
    stop = STOP

    def process(self, rows: list[Row]) -> ChunkResult:
        examples, props, k = fewshot_examples(), properties(), self.params.num_fewshots
        prompts, drawn = [], []
        for row in rows:
            rng = self.row_rng(row["id"])
            prop = sample_property(row["concepts"] or [], props, rng)
            drawn.append(
                {
                    "category": prop.category,
                    "language": prop.language,
                    "difficulty": prop.difficulty,
                }
            )
            prompts.append(
                PromptSpec(
                    self.render(instruction_prompt(prop, examples, k, rng, self.chat)),
                    1,
                    self.row_seed(row["id"]),
                )
            )
        results, stats = self.generate(prompts)
        result = ChunkResult(stats=stats)
        for row, prop, (completion,) in zip(rows, drawn, results):
            failure = self.failure(completion)
            parsed = parse_instruction(completion.text) if failure is None else None
            if failure is None and not parsed.ok:
                failure = (parsed.error, parsed.detail)
            if failure is not None:
                out = {
                    **row,
                    "instruction_id": None,
                    "instruction": None,
                    **prop,
                    "instruction_raw": completion.text,
                    **completion_row(completion),
                }
                result.dropped.append(Drop(out, *failure))
                continue
            digest = hashlib.sha256(f"{row['id']}\0{parsed.value}".encode()).hexdigest()
            result.kept.append({
                **row, "instruction_id": digest[:16], "instruction": parsed.value, **prop,
                "instruction_raw": completion.text,
            })  # fmt: skip
        return result

    def method_notes(self) -> str:
        return (
            "The prompt shows a `### Property` block (category, language, difficulty, concepts) "
            "and the model answers under `### Instruction`; anything after a new `##`/`###` "
            "header it starts is cut off."
        )
