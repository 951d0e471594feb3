"""A task's tests as a program that counts how many of them pass, for a fractional reward.

A response's test block is a few top-level statements with `assert`s in them, often after some
setup (imports, fixtures) and helper functions. Each top-level statement that tests something (it
holds an `assert` outside a function, or it calls a function of the block that asserts) is one
test: it runs inside `try`, and a failure (any `Exception`) counts against it and does not stop
the others. Setup statements run as they are: if one fails, the program fails and every test
counts as failed. The last line the program prints is `<marker> <passed> <total>`; the marker
carries a digest of the program, so a completion cannot print a line the reader would trust
without knowing it (see `reward.py` for what it still can do).
"""

from __future__ import annotations

import ast
import hashlib

MARKER = "__builder_tests"


def count_tests(tests: str) -> int:
    """How many tests `scoring_program` counts in a test block (0 if it does not parse)."""
    return sum(_test_flags(tests)[1])


def scoring_program(code: str, tests: str) -> tuple[str, str] | None:
    """`code` followed by `tests` rewritten to count passes, and the marker its last line
    starts with; None if the tests do not parse or hold no test."""
    tree, flags = _test_flags(tests)
    total = sum(flags)
    if tree is None or total == 0:
        return None
    digest = hashlib.sha256(f"{code}\0{tests}".encode()).hexdigest()[:16]
    marker = f"{MARKER}_{digest}"
    lines = ["__builder_passed = 0"]
    for stmt, is_test in zip(tree.body, flags):
        source = ast.unparse(stmt)
        if not is_test:
            lines.append(source)
            continue
        body = "\n".join("    " + line for line in source.splitlines())
        lines.append(f"try:\n{body}\nexcept Exception:\n    pass\nelse:\n    __builder_passed += 1")
    lines.append(f"print({marker!r}, __builder_passed, {total})")
    return f"{code.rstrip()}\n\n\n" + "\n".join(lines) + "\n", marker


def read_score(stdout: str, marker: str) -> float | None:
    """passed / total from the program's output, or None if the marker line is not there."""
    for line in reversed(stdout.splitlines()):
        parts = line.split()
        if len(parts) == 3 and parts[0] == marker and parts[1].isdigit() and parts[2].isdigit():
            passed, total = int(parts[1]), int(parts[2])
            return passed / total if 0 < total and passed <= total else None
    return None


def _test_flags(tests: str) -> tuple[ast.Module | None, list[bool]]:
    """The parsed block and, per top-level statement, whether it is a test."""
    try:
        tree = ast.parse(tests)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None, []
    asserting = _asserting_functions(tree)
    return tree, [_is_test(stmt, asserting) for stmt in tree.body]


def _asserting_functions(tree: ast.Module) -> set[str]:
    return {
        stmt.name
        for stmt in tree.body
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and _asserts(stmt)
    }


def _is_test(stmt: ast.stmt, asserting: set[str]) -> bool:
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return False  # defining a test runs nothing; calling it does
    if _asserts(stmt):
        return True
    calls = [node for node in ast.walk(stmt) if isinstance(node, ast.Call)]
    return any(isinstance(c.func, ast.Name) and c.func.id in asserting for c in calls)


def _asserts(node: ast.AST) -> bool:
    return any(isinstance(child, ast.Assert) for child in ast.walk(node))
