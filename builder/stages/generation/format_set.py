"""Prompt/completion pairs in the pipeline's own formats, made from our few-shot library: what
`builder tiny-model` fits the tiny model on, so that a demo run has data in every stage.

For each few-shot example, the four generation prompts exactly as the stages build them
(`prompting.py`, with the recipe's number of shots) and the answer our parsers accept:
the judge's "Yes" (every example is a good seed), the example's concepts, its instruction for a
sampled property, and its four-part response, whose implementation passes its own tests (also
with only the first part of its tests: more distinct responses, all of them passing). Each
answer ends the way the stages stop generation: at the next example header (or, for the judge,
at the end of its line). A model fitted on these learns the formats and the examples, nothing
else: its answers for new seeds are the library's answers, and its scores mean nothing.
"""

from __future__ import annotations

import ast
import dataclasses
import random
from collections.abc import Iterator

from builder.stages.generation.library import fewshot_examples, judge_examples, properties
from builder.stages.generation.prompting import (
    EXAMPLE_HEADER,
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
    """{"task", "prompt", "completion"} for every example, task and draw. The query of each
    prompt comes from another example, drawn at random (a draw also samples the shots shown
    and the instruction's property anew): a task's answer does not depend on its query, so the
    model learns each task's answers from the prompt's format alone, whatever the seed."""
    examples = fewshot_examples()
    rng = random.Random(seed)
    for draw in range(draws):
        for example in examples:
            other = rng.choice(examples)
            shown = [e for e in examples if e is not example]  # never its own answer shown
            code = rng.choice([other.snippet, other.implementation])
            judge = judge_prompt(code, judge_examples(), shots, rng)
            yield _pair("judge", judge, "Yes\n")
            yield _pair(
                "concepts",
                concepts_prompt(code, shown, shots, rng),
                render_concepts(example.concepts) + _END,
            )
            prop = sample_property(other.concepts, properties(), rng)
            yield _pair(
                "instructions",
                instruction_prompt(prop, shown, shots, rng),
                example.instruction + _END,
            )
            if draw == 0:  # each response variant once: there are three per example already
                for response in response_variants(example):
                    query = rng.choice(examples).instruction
                    prompt = response_prompt(query, shown, shots, rng)
                    yield _pair("responses", prompt, response + _END)


def response_variants(example, parts: int = 3) -> list[str]:
    """The example's response, and the same with only the first part(s) of its tests (whole
    top-level statements, each variant with at least one assert): every variant is a response
    our parser accepts and whose tests pass, and there are more of them to choose from."""
    lines = example.tests.splitlines()
    statements = ast.parse(example.tests).body
    cuts = sorted({max(1, round(len(statements) * k / parts)) for k in range(1, parts + 1)})
    variants = []
    for cut in cuts:
        kept = statements[:cut]
        if not any(isinstance(node, ast.Assert) for node in kept):
            continue
        tests = "\n".join(lines[: kept[-1].end_lineno]).rstrip()
        variants.append(render_response(dataclasses.replace(example, tests=tests)))
    return list(dict.fromkeys(variants))


def _pair(task: str, prompt: str, completion: str) -> dict[str, str]:
    return {"task": task, "prompt": prompt, "completion": completion}
