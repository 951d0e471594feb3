"""Small pure text transforms for the final SFT pairs: normalising, comment stripping, and
removing the tests section of a four-part response."""

from __future__ import annotations

import io
import re
import tokenize

_PYTHON_BLOCK = re.compile(r"(```(?:python3?|py)[ \t]*\n)(.*?)(```)", re.S | re.I)
_TESTS_SECTION = re.compile(r"^\[Tests\][ \t]*$.*", re.M | re.S)


def normalise(text: str) -> str:
    """Whitespace runs collapsed to one space: the key for exact dedup."""
    return " ".join(text.split())


def strip_comments(code: str) -> str:
    """`code` without `#` comments (docstrings stay); unchanged if it does not tokenize."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return code
    lines = code.splitlines(keepends=True)
    for token in reversed(tokens):  # right to left, so earlier offsets stay valid
        if token.type == tokenize.COMMENT:
            row, col = token.start
            line = lines[row - 1]
            kept = line[:col].rstrip()
            lines[row - 1] = (kept + "\n") if kept else ""
    return "".join(lines)


def strip_comments_in_blocks(response: str) -> str:
    return _PYTHON_BLOCK.sub(
        lambda m: m.group(1) + strip_comments(m.group(2)) + m.group(3), response
    )


def remove_tests_section(response: str) -> str:
    """The response up to its `[Tests]` section (reasoning, implementation, explanation)."""
    return _TESTS_SECTION.sub("", response).rstrip() + "\n"


def remove_untagged_tests(response: str, parts) -> str:
    """An untagged response (chat mode) without its tests: the tests' code block left out, or,
    where the tests were split out of the solution's block, their lines."""
    if parts.tests_span is not None:
        start, end = parts.tests_span
        return (response[:start].rstrip() + "\n\n" + response[end:].lstrip()).strip() + "\n"
    index = response.find(parts.tests)
    if index < 0:
        return response
    return response[:index].rstrip() + "\n" + response[index + len(parts.tests) :].lstrip("\n")
