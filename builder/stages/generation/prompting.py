"""Building the Self-OSS-Instruct prompts: pure functions of their inputs and a random source.

The published format, in completion mode: a preamble, then `k` worked examples, each opened by
`## Example <i>` and made of a query and its answer, then `## Example <k+1>` with the new query
and nothing after it, so that the base model writes the answer. It stops at the next example
header (`STOP`). Which `k` examples, and in which order, is drawn from `rng`, which the stages
seed per row, so a row's prompt does not depend on where it sits in the input.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from builder.stages.generation.library import (
    FewshotExample,
    JudgeExample,
    Properties,
    Template,
    template,
)

EXAMPLE_HEADER = "## Example"
STOP = (EXAMPLE_HEADER,)
JUDGE_STOP = ("\n", EXAMPLE_HEADER)  # the answer is one word on one line


@dataclass(frozen=True)
class Property:
    """What an instruction must be: its category, language, difficulty and concepts."""

    category: str
    language: str
    difficulty: str
    concepts: tuple[str, ...]

    def fields(self) -> dict[str, str]:
        return {
            "category": self.category,
            "language": self.language,
            "difficulty": self.difficulty,
            "concepts": render_concepts(self.concepts),
        }


def assemble(tpl: Template, shots: Sequence[tuple[dict, dict]], query: dict) -> str:
    """Preamble, one block per (query fields, answer fields) shot, then the open query."""
    blocks = [
        f"{EXAMPLE_HEADER} {i}\n{tpl.query.format(**q)}\n{tpl.answer.format(**a)}"
        for i, (q, a) in enumerate(shots, start=1)
    ]
    blocks.append(f"{EXAMPLE_HEADER} {len(shots) + 1}\n{tpl.query.format(**query)}\n")
    return tpl.preamble + "\n\n" + "\n\n".join(blocks)


def pick(examples: Sequence, k: int, rng: random.Random) -> list:
    """k distinct examples in random order (all of them, shuffled, if there are fewer)."""
    return rng.sample(list(examples), min(max(k, 0), len(examples)))


def render_concepts(concepts: Sequence[str]) -> str:
    return ", ".join(concepts)


def render_response(example: FewshotExample) -> str:
    """An example's response in the four-part format (the answer of the responses template)."""
    return template("responses").answer.format(
        reasoning=example.reasoning,
        implementation=example.implementation,
        explanation=example.explanation,
        tests=example.tests,
    )


def example_property(example: FewshotExample) -> Property:
    return Property(example.category, example.language, example.difficulty, example.concepts)


def judge_prompt(
    function: str, examples: Sequence[JudgeExample], k: int, rng: random.Random
) -> str:
    shots = [({"function": e.function}, {"answer": e.answer}) for e in pick(examples, k, rng)]
    return assemble(template("judge"), shots, {"function": function.rstrip()})


def concepts_prompt(
    snippet: str, examples: Sequence[FewshotExample], k: int, rng: random.Random
) -> str:
    shots = [
        ({"snippet": e.snippet}, {"concepts": render_concepts(e.concepts)})
        for e in pick(examples, k, rng)
    ]
    return assemble(template("concepts"), shots, {"snippet": snippet.rstrip()})


def sample_property(concepts: Sequence[str], props: Properties, rng: random.Random) -> Property:
    return Property(
        category=rng.choice(props.categories),
        language=rng.choice(props.languages),
        difficulty=rng.choice(props.difficulties),
        concepts=tuple(concepts),
    )


def instruction_prompt(
    prop: Property, examples: Sequence[FewshotExample], k: int, rng: random.Random
) -> str:
    shots = [
        (example_property(e).fields(), {"instruction": e.instruction})
        for e in pick(examples, k, rng)
    ]
    return assemble(template("instructions"), shots, prop.fields())


def response_prompt(
    instruction: str, examples: Sequence[FewshotExample], k: int, rng: random.Random
) -> str:
    tpl = template("responses")
    shots = [
        (
            {"instruction": e.instruction},
            {
                "reasoning": e.reasoning,
                "implementation": e.implementation,
                "explanation": e.explanation,
                "tests": e.tests,
            },
        )
        for e in pick(examples, k, rng)
    ]
    return assemble(tpl, shots, {"instruction": instruction.strip()})
