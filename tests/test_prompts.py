"""Prompt building and parsing: pure functions, on hand-written model outputs good and bad."""

import random
import re
import textwrap

import pytest

from builder.stages.generation.library import fewshot_examples, judge_examples, properties, template
from builder.stages.generation.parse import (
    parse_concepts,
    parse_instruction,
    parse_judge,
    parse_response,
)
from builder.stages.generation.prompting import (
    STOP,
    concepts_prompt,
    instruction_prompt,
    judge_prompt,
    response_prompt,
    sample_property,
)

SEED_FUNCTION = '''def slugify(title):
    """Lowercase `title` and join its words with hyphens."""
    return "-".join(title.lower().split())
'''


def headers(prompt: str) -> list[int]:
    return [int(n) for n in re.findall(r"^## Example (\d+)$", prompt, re.MULTILINE)]


@pytest.mark.parametrize("k", [0, 1, 3, 8])
def test_prompts_have_k_examples_then_the_open_query(k):
    examples = fewshot_examples()
    prompts = {
        "concepts": concepts_prompt(SEED_FUNCTION, examples, k, random.Random(1)),
        "instructions": instruction_prompt(
            sample_property(["recursion", "memoization"], properties(), random.Random(1)),
            examples,
            k,
            random.Random(1),
        ),
        "responses": response_prompt(
            "Write `double(x)` returning 2 * x.", examples, k, random.Random(1)
        ),
        "judge": judge_prompt(SEED_FUNCTION, judge_examples(), k, random.Random(1)),
    }
    for task, prompt in prompts.items():
        assert prompt.startswith(template(task).preamble), task
        assert headers(prompt) == list(range(1, k + 2)), task
        # The prompt ends with the open query: its last header, then nothing but a newline.
        last_query_header = template(task).query.splitlines()[-1]
        assert prompt.endswith(last_query_header + "\n"), task
        assert prompt.count(STOP[0]) == k + 1  # the model's next "## Example" is where it stops
    assert (
        SEED_FUNCTION.rstrip() in prompts["concepts"] and SEED_FUNCTION.rstrip() in prompts["judge"]
    )
    assert "concepts: recursion, memoization" in prompts["instructions"]
    assert prompts["responses"].endswith(
        "### Instruction\nWrite `double(x)` returning 2 * x.\n\n### Response\n"
    )


def test_few_shot_draws_depend_on_the_rng_only():
    examples = fewshot_examples()
    first = response_prompt("Do X.", examples, 3, random.Random(7))
    assert response_prompt("Do X.", examples, 3, random.Random(7)) == first
    others = {response_prompt("Do X.", examples, 3, random.Random(s)) for s in range(8)}
    assert len(others) > 1  # different rows see different examples
    # Asking for more examples than there are gives each once.
    prompt = concepts_prompt(SEED_FUNCTION, examples, 100, random.Random(0))
    assert headers(prompt) == list(range(1, len(examples) + 2))
    for example in examples:
        assert prompt.count(example.snippet) == 1


def test_shots_are_rendered_with_their_answers():
    example = fewshot_examples()[0]
    prompt = concepts_prompt(SEED_FUNCTION, [example], 1, random.Random(0))
    assert f"### Concepts\n{', '.join(example.concepts)}\n\n## Example 2" in prompt
    prompt = response_prompt("Task.", [example], 1, random.Random(0))
    assert f"[Implementation]\n```python\n{example.implementation}\n```" in prompt
    assert f"[Tests]\n```python\n{example.tests}\n```\n\n## Example 2" in prompt


def test_sample_property_draws_from_the_properties_file():
    props = properties()
    drawn = {sample_property(["a"], props, random.Random(s)) for s in range(50)}
    assert {p.category for p in drawn} == set(props.categories)
    assert {p.difficulty for p in drawn} == set(props.difficulties)
    assert all(p.language in props.languages and p.concepts == ("a",) for p in drawn)
    assert sample_property(["a"], props, random.Random(3)) == sample_property(
        ["a"], props, random.Random(3)
    )


@pytest.mark.parametrize(
    "text, value",
    [
        ("Yes", "yes"),
        (" No.", "no"),
        ("YES, the docstring says it all", "yes"),
        ("no - it does not mention the flag", "no"),
        ("**Yes**", "yes"),
    ],
)
def test_judge_answers(text, value):
    assert parse_judge(text).value == value


@pytest.mark.parametrize("text", ["", "   ", "Maybe", "Yess", "The docstring is fine", "是"])
def test_judge_unclear_answers(text):
    parsed = parse_judge(text)
    assert not parsed.ok and parsed.error == "judge_unclear" and parsed.value is None


def test_concepts_good_and_bad():
    good = parse_concepts("regular expressions, named groups, input validation.\n")
    assert good.value == ["regular expressions", "named groups", "input validation"]
    # A wrapped line, then the model starting another section: only the first paragraph counts.
    spill = parse_concepts(
        "recursion, memoization,\n dynamic programming\n\n### Property\ncategory: x"
    )
    assert spill.value == ["recursion", "memoization", "dynamic programming"]
    assert parse_concepts("sorting, , binary search").value == ["sorting", "binary search"]
    assert parse_concepts("").error == "empty"
    assert parse_concepts(" , ,\n").error == "empty"
    assert parse_concepts("### Instruction\nWrite a function").error == "empty"
    garbage = parse_concepts("ionslinh oamesrog " * 12)
    assert garbage.error == "malformed_concepts" and "characters" in garbage.detail


def test_instructions_good_and_bad():
    text = (
        "Write a function `merge(a, b)` that merges two sorted lists into one sorted list.\n"
        "Raise `TypeError` if either argument is not a list.\n\n### Response\n[Reasoning]\n..."
    )
    assert parse_instruction(text).value == (
        "Write a function `merge(a, b)` that merges two sorted lists into one sorted list.\n"
        "Raise `TypeError` if either argument is not a list."
    )
    # A comment inside a code example is not a section header.
    with_code = (
        "Implement `f` so that:\n```python\n# f doubles\nassert f(2) == 4\n```\nfor any int."
    )
    assert parse_instruction(with_code).value == with_code
    assert parse_instruction("\n\n").error == "empty"
    assert parse_instruction("Sort a list.").error == "too_short"


GOOD_RESPONSE = textwrap.dedent("""\
    [Reasoning]
    A set remembers what was seen; a list keeps the order.

    [Implementation]
    ```py
    def unique(items):
        seen = set()
        out = []
        for item in items:
            if item not in seen:
                seen.add(item)
                out.append(item)
        return out
    ```

    [Explanation]
    Each item is checked once, so it runs in linear time.

    [Tests]
    ```python
    assert unique([3, 1, 3, 2, 1]) == [3, 1, 2]
    ```
    ```python
    assert unique([]) == []
    ```
    """)


def test_a_good_response_gives_its_four_parts():
    parsed = parse_response(GOOD_RESPONSE)
    assert parsed.ok, parsed
    parts = parsed.value
    assert parts.reasoning == "A set remembers what was seen; a list keeps the order."
    assert parts.implementation.startswith("def unique(items):") and parts.implementation.endswith(
        "return out"
    )
    assert parts.explanation == "Each item is checked once, so it runs in linear time."
    assert parts.tests == "assert unique([3, 1, 3, 2, 1]) == [3, 1, 2]\n\nassert unique([]) == []"


def _replace(old: str, new: str) -> str:
    assert old in GOOD_RESPONSE
    return GOOD_RESPONSE.replace(old, new)


@pytest.mark.parametrize(
    "text, reason",
    [
        (GOOD_RESPONSE.split("[Tests]")[0], "missing_tests"),
        (_replace("[Reasoning]\n", ""), "missing_reasoning"),
        (_replace("[Explanation]", "Explanation:"), "missing_explanation"),
        (
            (
                "[Implementation]\n```python\nx = 1\n```\n[Reasoning]\nr\n"
                "[Explanation]\ne\n[Tests]\n```python\nassert x\n```"
            ),
            "sections_out_of_order",
        ),
        (
            _replace("```py\n", "").replace("    return out\n```", "    return out"),
            "no_implementation_code",
        ),
        (GOOD_RESPONSE.split("[Tests]")[0] + "[Tests]\nassert unique([]) == []\n", "no_test_code"),
        (_replace("def unique(items):", "def unique(items)"), "implementation_syntax_error"),
        (_replace("assert unique([]) == []", "assert unique([]) ==="), "tests_syntax_error"),
        (
            _replace("assert unique([3, 1, 3, 2, 1]) == [3, 1, 2]", "print(unique([1]))").replace(
                "assert unique([]) == []", "unique([])"
            ),
            "no_asserts",
        ),
        (
            _replace(
                "assert unique([3, 1, 3, 2, 1]) == [3, 1, 2]", "assert sorted([2, 1]) == [1, 2]"
            ).replace("assert unique([]) == []", "assert len([]) == 0"),
            "tests_do_not_call_implementation",
        ),
        # Cut off inside the tests' code block (what a truncated sample looks like).
        (
            GOOD_RESPONSE.split("[Tests]")[0] + "[Tests]\n```python\nassert unique([3, 1",
            "no_test_code",
        ),
        ("k\u00e9 ion ptrog ## up; rog", "missing_reasoning"),  # a random model's noise
    ],
)
def test_malformed_responses_are_refused_with_a_reason(text, reason):
    parsed = parse_response(text)
    assert not parsed.ok and parsed.error == reason, parsed
    assert parsed.detail
