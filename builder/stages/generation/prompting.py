"""Building the Self-OSS-Instruct prompts: pure functions of their inputs and a random source.

The published format, in completion mode: a preamble, then `k` worked examples, each opened by
`## Example <i>` and made of a query and its answer, then `## Example <k+1>` with the new query
and nothing after it, so that the base model writes the answer. It stops at the next example
header (`STOP`). Which `k` examples, and in which order, is drawn from `rng`, which the stages
seed per row, so a row's prompt does not depend on where it sits in the input.

In chat mode (`chat=True`, for instruct models) the same parts become messages: the template's
`chat_preamble` as the system turn, each worked example as a user turn (its query) and an
assistant turn (its answer), then the row's query as the last user turn. The stage renders them
with the tokenizer's own chat template (`render_chat`).

The judge's examples are drawn balanced, half Yes and half No, in a shuffled order: a model
tends to repeat the answer of the last example it saw, and a draw that happens to end on (or
be mostly) No makes a weak model answer No to everything.
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


Prompt = str | list[dict[str, str]]  # completion text, or chat messages


def assemble(
    tpl: Template, shots: Sequence[tuple[dict, dict]], query: dict, chat: bool = False
) -> Prompt:
    """Preamble, one block per (query fields, answer fields) shot, then the open query (in
    chat mode: the same as messages)."""
    if chat:
        messages = [{"role": "system", "content": tpl.chat_preamble}]
        for q, a in shots:
            messages.append({"role": "user", "content": tpl.chat_query.format(**q)})
            messages.append({"role": "assistant", "content": tpl.answer.format(**a)})
        messages.append({"role": "user", "content": tpl.chat_query.format(**query)})
        return messages
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


def pick_balanced(examples: Sequence[JudgeExample], k: int, rng: random.Random) -> list:
    """k judge examples, as many Yes as No (the odd one out drawn at random), shuffled."""
    yes = [e for e in examples if e.answer == "Yes"]
    no = [e for e in examples if e.answer == "No"]
    k = min(max(k, 0), len(examples))
    half = k // 2
    chosen = pick(yes, half, rng) + pick(no, half, rng)
    rest = [e for e in examples if e not in chosen]
    chosen += pick(rest, k - len(chosen), rng)
    rng.shuffle(chosen)
    return chosen


def judge_prompt(
    function: str, examples: Sequence[JudgeExample], k: int, rng: random.Random, chat: bool = False
) -> Prompt:
    shots = [
        ({"function": e.function}, {"answer": e.answer}) for e in pick_balanced(examples, k, rng)
    ]
    return assemble(template("judge"), shots, {"function": function.rstrip()}, chat)


def concepts_prompt(
    snippet: str,
    examples: Sequence[FewshotExample],
    k: int,
    rng: random.Random,
    chat: bool = False,
) -> Prompt:
    shots = [
        ({"snippet": e.snippet}, {"concepts": render_concepts(e.concepts)})
        for e in pick(examples, k, rng)
    ]
    return assemble(template("concepts"), shots, {"snippet": snippet.rstrip()}, chat)


def sample_property(concepts: Sequence[str], props: Properties, rng: random.Random) -> Property:
    return Property(
        category=rng.choice(props.categories),
        language=rng.choice(props.languages),
        difficulty=rng.choice(props.difficulties),
        concepts=tuple(concepts),
    )


def instruction_prompt(
    prop: Property,
    examples: Sequence[FewshotExample],
    k: int,
    rng: random.Random,
    chat: bool = False,
) -> Prompt:
    shots = [
        (example_property(e).fields(), {"instruction": e.instruction})
        for e in pick(examples, k, rng)
    ]
    return assemble(template("instructions"), shots, prop.fields(), chat)


def response_prompt(
    instruction: str,
    examples: Sequence[FewshotExample],
    k: int,
    rng: random.Random,
    chat: bool = False,
) -> Prompt:
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
    return assemble(tpl, shots, {"instruction": instruction.strip()}, chat)


def render_chat(tokenizer, messages: list[dict[str, str]]) -> str:
    """Chat messages as the text the model continues, in the tokenizer's own chat template."""
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
