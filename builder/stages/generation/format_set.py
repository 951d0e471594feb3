"""Prompt/completion pairs in the pipeline's own formats, made from our few-shot library: what
`builder tiny-model` fits the tiny model on, so that a demo run has data in every stage.

For each few-shot example, the four generation prompts exactly as the stages build them
(`prompting.py`, with the recipe's number of shots) and the answer our parsers accept:
the judge's "Yes" (every example is a good seed), the example's concepts, its instruction for a
sampled property, and its four-part response, whose implementation passes its own tests. Each
answer ends the way the stages stop generation: at the next example header (or, for the judge,
at the end of its line). A model fitted on these learns the formats and the examples, nothing
else: its answers for new seeds are the library's answers, and its scores mean nothing.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from builder.stages.generation.library import fewshot_examples, judge_examples, properties
from builder.stages.generation.prompting import (
    EXAMPLE_HEADER,
    Property,
    concepts_prompt,
    instruction_prompt,
    judge_prompt,
    render_concepts,
    render_response,
    response_prompt,
    sample_property,
)

_END = f"\n\n{EXAMPLE_HEADER}"  # where the stages stop: the next example's header


def format_pairs(shots: int = 0, draws: int = 2, seed: int = 0) -> Iterator[dict[str, str]]:
    """{"task", "prompt", "completion"} for every example, task and draw (a draw samples the
    shots shown and the instruction's property anew)."""
    examples = fewshot_examples()
    rng = random.Random(seed)
    for draw in range(draws):
        for example in examples:
            others = [e for e in examples if e is not example]  # never its own answer shown
            judge = judge_prompt(example.snippet, judge_examples(), shots, rng)
            yield _pair("judge", judge, "Yes\n")
            yield _pair(
                "concepts",
                concepts_prompt(example.snippet, others, shots, rng),
                render_concepts(example.concepts) + _END,
            )
            prop = sample_property(example.concepts, properties(), rng) if draw else Property(
                example.category, example.language, example.difficulty, example.concepts
            )
            yield _pair(
                "instructions",
                instruction_prompt(prop, others, shots, rng),
                example.instruction + _END,
            )
            yield _pair(
                "responses",
                response_prompt(example.instruction, others, shots, rng),
                render_response(example) + _END,
            )


def _pair(task: str, prompt: str, completion: str) -> dict[str, str]:
    return {"task": task, "prompt": prompt, "completion": completion}
