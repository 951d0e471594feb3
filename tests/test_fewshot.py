"""The few-shot library: every example is runnable, tested, and parses with our own parsers."""

import ast
import shutil
import subprocess
import sys

import pytest

from builder.stages.generation import library
from builder.stages.generation.library import (
    fewshot_examples,
    judge_examples,
    properties,
)
from builder.stages.generation.parse import (
    parse_concepts,
    parse_instruction,
    parse_judge,
    parse_response,
)
from builder.stages.generation.prompting import render_concepts, render_response

EXAMPLES = fewshot_examples()


def test_the_library_has_at_least_16_distinct_examples():
    assert len(EXAMPLES) >= 16
    for field in ("snippet", "instruction", "implementation", "tests"):
        assert len({getattr(e, field) for e in EXAMPLES}) == len(EXAMPLES), field
    props = properties()
    for example in EXAMPLES:
        assert example.category in props.categories, example.name
        assert example.language in props.languages, example.name
        assert example.difficulty in props.difficulties, example.name
    assert {e.category for e in EXAMPLES} == set(props.categories)  # every category shown


def run_with_tests(code: str, tests: str, folder) -> subprocess.CompletedProcess:
    """`code` then `tests`, as one program in a fresh interpreter (isolated mode)."""
    program = folder / "program.py"
    program.write_text(code + "\n\n\n" + tests + "\n")
    return subprocess.run(
        [sys.executable, "-I", str(program)],
        capture_output=True, text=True, timeout=60, cwd=folder, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.name)
def test_solution_passes_its_own_tests(example, tmp_path):
    result = run_with_tests(example.implementation, example.tests, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]


class _ReturnNothing(ast.NodeTransformer):
    """Every `return x` becomes `return None`, every `yield` yields None."""

    def visit_Return(self, node):
        return ast.Return(value=ast.Constant(None))

    def visit_Yield(self, node):
        return ast.Yield(value=ast.Constant(None))

    def visit_YieldFrom(self, node):
        return ast.Yield(value=ast.Constant(None))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.name)
def test_tests_catch_a_broken_solution(example, tmp_path):
    """Tests that pass whatever the implementation returns would teach the model nothing."""
    broken = ast.unparse(
        ast.fix_missing_locations(_ReturnNothing().visit(ast.parse(example.implementation)))
    )
    assert broken != ast.unparse(ast.parse(example.implementation))
    result = run_with_tests(broken, example.tests, tmp_path)
    assert result.returncode != 0


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.name)
def test_example_parses_with_our_parsers(example):
    response = parse_response(render_response(example))
    assert response.ok, response
    assert response.value.implementation == example.implementation
    assert response.value.tests == example.tests
    assert response.value.reasoning == example.reasoning
    assert response.value.explanation == example.explanation
    assert tuple(parse_concepts(render_concepts(example.concepts)).value) == example.concepts
    assert parse_instruction(example.instruction).value == example.instruction
    ast.parse(example.snippet)  # a seed is valid Python


def test_judge_examples_parse_and_show_both_answers():
    examples = judge_examples()
    assert len(examples) >= 8
    assert {parse_judge(e.answer).value for e in examples} == {"yes", "no"}
    for example in examples:
        ast.parse(example.function)


def test_library_digest_follows_every_prompt_file(tmp_path, monkeypatch):
    """The digest (in every generation stage's fingerprint) changes when any prompt file's
    content or name changes, and only then: a copy of the library has the same digest."""
    copy = tmp_path / "prompts"
    shutil.copytree(library.PROMPTS_DIR, copy)

    def digest(folder) -> str:
        monkeypatch.setattr(library, "PROMPTS_DIR", folder)
        library.library_digest.cache_clear()
        return library.library_digest()

    try:
        original = digest(library.PROMPTS_DIR)
        assert len(original) == 16 and int(original, 16) >= 0
        assert digest(copy) == original  # where the files live does not matter
        seen = {original}
        example = copy / "fewshot" / "01-run-length.yaml"
        example.write_text(example.read_text().replace("positive decimal count", "decimal count"))
        seen.add(digest(copy))
        template = copy / "templates" / "judge.yaml"
        template.write_text(template.read_text() + "\n")
        seen.add(digest(copy))
        example.rename(copy / "fewshot" / "99-run-length.yaml")  # a name is part of the digest
        seen.add(digest(copy))
        assert len(seen) == 4
    finally:
        monkeypatch.undo()
        library.library_digest.cache_clear()
