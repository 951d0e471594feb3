"""Parsing what the model wrote: pure functions from completion text to fields, or a reason.

Every parser returns a `Parsed`: its `value` when the text has the expected shape, otherwise
an `error` (a short snake_case key that the stages count and keep as `drop_reason`) and a
`detail` for people. The text given is the completion after the prompt, already cut before the
stop string. Truncation (the model hit max_tokens) is the stages' business, not the parsers'.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any

SECTIONS = ("Reasoning", "Implementation", "Explanation", "Tests")
_TAG = re.compile(r"^\[(" + "|".join(SECTIONS) + r")\][ \t]*$", re.MULTILINE)
_CODE_BLOCK = re.compile(
    r"^```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)^```", re.MULTILINE | re.DOTALL | re.IGNORECASE
)
_HEADER_LINE = re.compile(r"^#{2,3} \S", re.MULTILINE)  # "## Example", "### Response"
_MAX_CONCEPT_CHARS = 100


@dataclass(frozen=True)
class Parsed:
    value: Any = None
    error: str = ""
    detail: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


def failed(error: str, detail: str = "") -> Parsed:
    return Parsed(None, error, detail[:200])


@dataclass(frozen=True)
class ResponseParts:
    reasoning: str
    implementation: str  # the code of the implementation's code block
    explanation: str
    tests: str  # the code of the tests' code block(s)


def parse_judge(text: str) -> Parsed:
    """'yes' or 'no' from the first word of the answer; anything else is unclear."""
    words = text.strip().split(maxsplit=1)
    word = words[0].strip(".,:;!\"'*").lower() if words else ""
    if word in ("yes", "no"):
        return Parsed(word)
    shown = text.strip()[:60] or "nothing"
    return failed("judge_unclear", f"answer is neither Yes nor No: {shown!r}")


def parse_concepts(text: str) -> Parsed:
    """The comma-separated concepts of the answer's first paragraph."""
    paragraph = _before_header(text).strip().split("\n\n", 1)[0]
    if not paragraph.strip():
        return failed("empty", "no concepts written")
    concepts = [c.strip().rstrip(".").strip() for c in " ".join(paragraph.split()).split(",")]
    concepts = [c for c in concepts if c]
    if not concepts:
        return failed("empty", "no concepts written")
    too_long = [c for c in concepts if len(c) > _MAX_CONCEPT_CHARS]
    if too_long:
        return failed(
            "malformed_concepts",
            f"a concept of {len(too_long[0])} characters: {too_long[0][:80]!r}",
        )
    return Parsed(concepts)


def parse_instruction(text: str) -> Parsed:
    """The task, up to any section header the model went on to write."""
    instruction = _before_header(text).strip()
    if not instruction:
        return failed("empty", "no instruction written")
    if len(instruction.split()) < 5:
        return failed("too_short", f"{len(instruction.split())} words: {instruction[:80]!r}")
    return Parsed(instruction)


def parse_response(text: str) -> Parsed:
    """The four parts of a response; the code must parse and the tests must assert on it."""
    sections = _sections(text)
    if isinstance(sections, Parsed):
        return sections
    implementation = _code_blocks(sections["Implementation"])
    if not implementation:
        return failed("no_implementation_code", "no code block after [Implementation]")
    tests = _code_blocks(sections["Tests"])
    if not tests:
        return failed("no_test_code", "no code block after [Tests]")
    code, test_code = implementation[0], "\n".join(tests)  # the first block is the solution
    try:
        code_tree = ast.parse(code)
    except SyntaxError as err:
        return failed("implementation_syntax_error", f"line {err.lineno}: {err.msg}")
    try:
        test_tree = ast.parse(test_code)
    except SyntaxError as err:
        return failed("tests_syntax_error", f"line {err.lineno}: {err.msg}")
    if not any(isinstance(node, ast.Assert) for node in ast.walk(test_tree)):
        return failed("no_asserts", "the tests have no assert statement")
    defined = _top_level_names(code_tree)
    if not defined & _used_names(test_tree):
        names = ", ".join(sorted(defined)[:5]) or "nothing"
        return failed("tests_do_not_call_implementation", f"the tests use none of: {names}")
    return Parsed(
        ResponseParts(
            reasoning=sections["Reasoning"].strip(),
            implementation=code.strip("\n"),
            explanation=sections["Explanation"].strip(),
            tests=test_code.strip("\n"),
        )
    )


def _before_header(text: str) -> str:
    match = _HEADER_LINE.search(text)
    return text[: match.start()] if match else text


def _sections(text: str) -> dict[str, str] | Parsed:
    found: dict[str, tuple[int, int]] = {}
    for match in _TAG.finditer(text):
        found.setdefault(match.group(1), (match.start(), match.end()))
    for name in SECTIONS:
        if name not in found:
            return failed(f"missing_{name.lower()}", f"no [{name}] section")
    starts = [found[name][0] for name in SECTIONS]
    if starts != sorted(starts):
        return failed("sections_out_of_order", "the four sections are not in order")
    ends = starts[1:] + [len(text)]
    return {name: text[found[name][1] : end] for name, end in zip(SECTIONS, ends)}


def _code_blocks(section: str) -> list[str]:
    return [block for block in _CODE_BLOCK.findall(section) if block.strip()]


def _top_level_names(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def _used_names(tree: ast.Module) -> set[str]:
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
