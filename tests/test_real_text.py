"""What real models write, on hand-made texts shaped like SmolLM2-135M-Instruct's (seen in the
real-model runs): chat prompts, the balanced judge, calibrated Yes/No scoring, responses with no
tags, runaway repetition, a last fence left open, concepts cut off after their line, and the
paired comparison of two models. Pure functions: no model needed."""

import math
import random

import pytest

from builder.engines.base import Completion
from builder.evaluation.compare import mcnemar_exact, paired_difference
from builder.stages.generation.concepts import answer_before_truncation
from builder.stages.generation.judge import calibrated_verdict, yes_no_margin
from builder.stages.generation.library import fewshot_examples, judge_examples, template
from builder.stages.generation.parse import parse_response, repair_response, repetitive
from builder.stages.generation.prompting import judge_prompt, pick_balanced, response_prompt
from builder.stages.select.sft_format import remove_untagged_tests

UNTAGGED = """Here is a function that does it:

```python
def add_one(x):
    return x + 1
```

It adds one to its argument.

```python
assert add_one(1) == 2
assert add_one(-1) == 0
```
"""

ONE_BLOCK = """```python
import math

def area(r):
    return math.pi * r * r

assert area(0) == 0
assert round(area(1), 2) == 3.14
```
This computes the area."""


def test_chat_prompts_are_turns_with_the_examples_as_earlier_exchanges():
    examples = fewshot_examples()
    messages = response_prompt("Write `f(x)`.", examples, 2, random.Random(3), chat=True)
    assert [m["role"] for m in messages] == ["system", "user", "assistant"] * 1 + [
        "user",
        "assistant",
        "user",
    ]
    assert messages[0]["content"] == template("responses").chat_preamble
    assert messages[-1]["content"].startswith("Write `f(x)`.")
    assert "[Tests]" in messages[-1]["content"]  # the format is asked for in the last turn
    assert messages[2]["content"].startswith("[Reasoning]")  # a worked answer, in full
    # the same row seed draws the same examples in both modes
    text = response_prompt("Write `f(x)`.", examples, 2, random.Random(3))
    assert messages[2]["content"] in text


@pytest.mark.parametrize("k", [2, 4, 5, 8])
def test_judge_examples_are_balanced_and_their_order_varies(k):
    examples = judge_examples()
    orders = set()
    for seed in range(20):
        chosen = pick_balanced(examples, k, random.Random(seed))
        answers = [e.answer for e in chosen]
        assert len(chosen) == k and len(set(map(id, chosen))) == k
        assert abs(answers.count("Yes") - answers.count("No")) <= 1
        orders.add(tuple(answers))
    assert len(orders) > 1  # the last example's answer is not always the same
    prompt = judge_prompt("def f(): pass", examples, k, random.Random(0), chat=True)
    assert len(prompt) == 2 + 2 * k  # system, k exchanges, the open question


def test_yes_no_margin_reads_any_spelling_and_bounds_a_missing_word():
    both_yes = math.log(math.exp(-0.5) + math.exp(-3.0))  # " Yes" and "yes" are one answer
    assert yes_no_margin({" Yes": -0.5, "No": -1.5, "yes": -3.0}) == pytest.approx(both_yes + 1.5)
    # No is not among the top tokens: it is at most as likely as the least likely listed
    assert yes_no_margin({"Yes": -0.1, "Maybe": -4.0}) == pytest.approx(3.9)
    assert yes_no_margin({"The": -0.1, "A": -2.0}) is None
    assert yes_no_margin(None) is None


def test_calibration_removes_the_models_lean_toward_no():
    """A model that prefers No everywhere still keeps a function it prefers less strongly."""

    def answer(yes, no):
        return Completion("No", "stop", 1, first_logprobs={"Yes": yes, "No": no})

    prior = answer(-2.0, -0.2)  # leans No by 1.8 on the N/A prompt
    assert calibrated_verdict(answer(-1.0, -0.4), prior)[:2] == ("yes", pytest.approx(1.2))
    assert calibrated_verdict(answer(-3.0, -0.1), prior)[:2] == ("no", pytest.approx(-1.1))
    verdict, score, (reason, detail) = calibrated_verdict(
        Completion("x", "stop", 1, first_logprobs={"The": -0.1}), prior
    )
    assert verdict is None and score is None and reason == "judge_unclear" and "The" in detail


def test_an_untagged_chat_answer_gives_its_parts():
    parsed = parse_response(UNTAGGED, untagged=True)
    assert parsed.ok, parsed
    parts = parsed.value
    assert parts.format == "untagged" and parts.repairs == ()
    assert parts.implementation == "def add_one(x):\n    return x + 1"
    assert parts.tests == "assert add_one(1) == 2\nassert add_one(-1) == 0"
    assert parts.reasoning == "Here is a function that does it:"
    assert parts.explanation == "It adds one to its argument."
    # completion mode keeps the published four-part format
    assert parse_response(UNTAGGED).error == "missing_reasoning"
    sft = remove_untagged_tests(UNTAGGED, parts)
    assert "assert" not in sft and "def add_one" in sft and "It adds one" in sft


def test_one_block_with_the_solution_and_its_asserts_is_split():
    parsed = parse_response(ONE_BLOCK, untagged=True)
    assert parsed.ok, parsed
    parts = parsed.value
    assert parts.repairs == ("split_single_block",)
    assert parts.implementation.startswith("import math") and "assert" not in parts.implementation
    assert parts.tests.startswith("assert area(0) == 0")
    sft = remove_untagged_tests(ONE_BLOCK, parts)
    assert "assert" not in sft and "return math.pi" in sft


@pytest.mark.parametrize(
    "text, reason",
    [
        ("The answer is to loop over the list and add one.", "no_code_block"),
        ("```python\ndef f(x):\n    return x\n```\n\n```python\nprint(f(1))\n```", "no_test_block"),
        ("```python\nassert 1 + 1 == 2\n```", "no_implementation_block"),
        (
            "```python\ndef f(:\n```\n```python\nassert f(1) == 1\n```",
            "implementation_syntax_error",
        ),
        (
            "```python\ndef f(x):\n    return x\n```\n```python\nassert g(1) == 1\n```",
            "tests_do_not_call_implementation",
        ),
        (
            "[Reasoning]\nr\n[Implementation]\n[Explanation]\n[Tests]\n```python\nassert f()\n```",
            "no_implementation_code",  # all four tags: read by its tags
        ),
    ],
)
def test_untagged_answers_that_cannot_be_used_have_a_specific_reason(text, reason):
    parsed = parse_response(text, untagged=True)
    assert not parsed.ok and parsed.error == reason, parsed
    assert parsed.detail


def test_a_partly_tagged_chat_answer_is_read_by_its_blocks():
    text = "[Reasoning]\nAdd one.\n\n" + UNTAGGED.split("\n", 2)[2]  # no [Implementation] tag
    parsed = parse_response(text, untagged=True)
    assert parsed.ok and parsed.value.format == "untagged"
    assert parsed.value.reasoning == "[Reasoning]\nAdd one."
    assert parse_response(text).error == "missing_implementation"


def test_a_last_code_block_left_open_is_closed_and_nothing_else_is_touched():
    text, repairs = repair_response(UNTAGGED.rstrip().removesuffix("```"))
    assert repairs == ("closed_final_fence",) and text == UNTAGGED
    assert parse_response(text, untagged=True).ok
    assert repair_response(UNTAGGED) == (UNTAGGED, ())
    prose = "no fences here"
    assert repair_response(prose) == (prose, ())


def test_runaway_repetition_is_told_from_long_text():
    loop = "def f():\n    return 1\n" + "        elif char == 'A':\n            char = 'A'\n" * 60
    assert repetitive(loop)
    varied = "\n".join(f"line {i}: {random.Random(i).random():.12f} {i * i}" for i in range(80))
    assert not repetitive(varied)
    assert not repetitive("short" * 10)


def test_concepts_cut_off_after_a_complete_line_keep_that_line():
    text = "string formatting, recursion.\n\ndef _log10(c, correction = {"
    parsed = answer_before_truncation(text)
    assert parsed is not None and parsed.value == ["string formatting", "recursion"]
    assert answer_before_truncation("list, range(max(x) + min(x)), max3, max(x) +") is None


def test_paired_difference_and_its_interval():
    tasks = [f"t{i}" for i in range(200)]
    before = {t: float(i % 4 == 0) for i, t in enumerate(tasks)}  # 25%
    same = paired_difference(before, before)
    assert same["difference"] == 0 and same["ci95"] == [0, 0] and same["verdict"] == "no difference"
    after = {t: 1.0 if i % 4 == 0 or i % 4 == 1 else 0.0 for i, t in enumerate(tasks)}  # 50%
    better = paired_difference(after, before)
    assert better["difference"] == pytest.approx(0.25)
    low, high = better["ci95"]
    assert 0 < low < 0.25 < high and better["verdict"] == "better"
    assert better["only_after"] == 50 and better["only_before"] == 0
    assert better["mcnemar_p"] < 1e-10
    # one task different out of 200: inside the noise
    noisy = dict(before, t1=1.0)
    assert paired_difference(noisy, before)["verdict"] == "no difference"
    assert paired_difference({"a": 1.0}, {"b": 0.0}) == {"tasks": 0}


def test_mcnemar_exact_matches_the_binomial_tail():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 5) == 1.0
    assert mcnemar_exact(0, 6) == pytest.approx(2 / 64)
    assert mcnemar_exact(1, 9) == pytest.approx(2 * 11 / 1024)
