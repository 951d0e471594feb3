"""Parsing what the model wrote: pure functions from completion text to fields, or a reason.

Every parser returns a `Parsed`: its `value` when the text has the expected shape, otherwise
an `error` (a short snake_case key that the stages count and keep as `drop_reason`) and a
`detail` for people. The text given is the completion after the prompt, already cut before the
stop string. Truncation (the model hit max_tokens) is the stages' business, not the parsers'.
"""

from __future__ import annotations

import ast
import re
import zlib
from dataclasses import dataclass
from typing import Any

SECTIONS = ("Reasoning", "Implementation", "Explanation", "Tests")
_TAG = re.compile(r"^\[(" + "|".join(SECTIONS) + r")\][ \t]*$", re.MULTILINE)
_CODE_BLOCK = re.compile(
    r"^```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)^```", re.MULTILINE | re.DOTALL | re.IGNORECASE
)
_HEADER_LINE = re.compile(r"^#{2,3} \S", re.MULTILINE)  # "## Example", "### Response"
_FENCE_LINE = re.compile(r"^[ \t]*```", re.MULTILINE)
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
    format: str = "tagged"  # tagged: the four [Part] tags; untagged: code blocks and prose
    # untagged: where the tests' block is in the text ([start, end) of its fences), so that the
    # SFT response can leave it out; None when the tests were split out of the solution's block
    tests_span: tuple[int, int] | None = None
    repairs: tuple[str, ...] = ()  # small repairs made to parse it (see `repair_response`)


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


def repair_response(text: str) -> tuple[str, tuple[str, ...]]:
    """Small, safe repairs of a response that ended by itself: a last code block left open
    at the very end is closed (`closed_final_fence`). Returns the text and the repairs made."""
    fences = _FENCE_LINE.findall(text)
    if len(fences) % 2 == 1 and _FENCE_LINE.search(text.rstrip().rsplit("\n", 1)[-1]) is None:
        return text.rstrip("\n") + "\n```\n", ("closed_final_fence",)
    return text, ()


def parse_response(text: str, untagged: bool = False) -> Parsed:
    """The four parts of a response; the code must parse and the tests must assert on it.

    With `untagged` (chat mode: instruct models answer in their own way), a response without
    all four tags is read as prose and code blocks: the last block with an assert holds the
    tests, the first block before it that defines something is the implementation, the prose
    before it the reasoning and the prose between them the explanation (a tag the model did
    write stays in the prose). A single block with both the solution and its asserts is split
    at its first top-level assert."""
    if untagged and {m.group(1) for m in _TAG.finditer(text)} != set(SECTIONS):
        return _parse_untagged(text)
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
    unused = _tests_ignore_implementation(code_tree, test_tree)
    if unused is not None:
        return unused
    return Parsed(
        ResponseParts(
            reasoning=sections["Reasoning"].strip(),
            implementation=code.strip("\n"),
            explanation=sections["Explanation"].strip(),
            tests=test_code.strip("\n"),
        )
    )


def _parse_untagged(text: str) -> Parsed:
    blocks = [(m.start(), m.end(), m.group(1)) for m in _CODE_BLOCK.finditer(text)]
    blocks = [b for b in blocks if b[2].strip()]
    if not blocks:
        return failed("no_code_block", "an answer without a python code block")
    trees = []
    for start, end, code in blocks:
        try:
            trees.append(ast.parse(code))
        except SyntaxError:
            trees.append(None)
    with_asserts = [
        i for i, tree in enumerate(trees)
        if tree is not None and any(isinstance(n, ast.Assert) for n in ast.walk(tree))
    ]  # fmt: skip
    if not with_asserts:
        broken = sum(tree is None for tree in trees)
        detail = f"{len(blocks)} code blocks, none with an assert"
        return failed("no_test_block", detail + (f" ({broken} do not parse)" if broken else ""))
    t = with_asserts[-1]
    defining = [i for i in range(t) if trees[i] is not None and _top_level_names(trees[i])]
    if defining:
        i = defining[0]
        code, tests, span, repairs = blocks[i][2], blocks[t][2], (blocks[t][0], blocks[t][1]), ()
        explanation = text[blocks[i][1] : blocks[t][0]]
    else:  # one block with the solution and then its asserts: split it
        i = t
        split = _split_at_first_assert(trees[t], blocks[t][2])
        if split is None:
            if any(trees[k] is None for k in range(t)):
                return failed("implementation_syntax_error", "the solution's block does not parse")
            return failed("no_implementation_block", "no code block defines the solution")
        (code, tests), span, repairs = split, None, ("split_single_block",)
        explanation = text[blocks[t][1] :]
    unused = _tests_ignore_implementation(ast.parse(code), ast.parse(tests))
    if unused is not None:
        return unused
    return Parsed(
        ResponseParts(
            reasoning=text[: blocks[i][0]].strip(),
            implementation=code.strip("\n"),
            explanation=explanation.strip(),
            tests=tests.strip("\n"),
            format="untagged",
            tests_span=span,
            repairs=repairs,
        )
    )


def _tests_ignore_implementation(code_tree: ast.Module, test_tree: ast.Module) -> Parsed | None:
    """The failure when the tests use none of the names the implementation defines."""
    defined = _top_level_names(code_tree)
    if defined & _used_names(test_tree):
        return None
    names = ", ".join(sorted(defined)[:5]) or "nothing"
    return failed("tests_do_not_call_implementation", f"the tests use none of: {names}")


def _split_at_first_assert(tree: ast.Module, code: str) -> tuple[str, str] | None:
    """(solution, tests) of one block whose top level defines something, then asserts."""
    first = next((n for n in tree.body if isinstance(n, ast.Assert)), None)
    if first is None:
        return None
    before = ast.Module(body=tree.body[: tree.body.index(first)], type_ignores=[])
    if not _top_level_names(before):
        return None
    lines = code.splitlines(keepends=True)
    cut = first.lineno - 1
    return "".join(lines[:cut]), "".join(lines[cut:])


def repetitive(text: str, window: int = 2000) -> bool:
    """Whether the end of `text` is a loop: its last `window` characters compress to under a
    tenth of their size (prose and code compress to a third or more)."""
    tail = text[-window:]
    if len(tail) < 400:
        return False
    return len(zlib.compress(tail.encode())) < 0.1 * len(tail.encode())


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
