"""The static rules of `filter`, each a small function over a function's text or syntax tree.

Each rule returns None when the function passes, or a short detail saying what matched.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
# Statements and patterns that bind the name in their `name` field.
_NAMED_BINDINGS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.ExceptHandler,
                   ast.MatchAs, ast.MatchStar)


class NotAFunction(Exception):
    """The text parses, but does not start with a function definition."""


def parse_function(text: str) -> FunctionNode:
    """The function defined by `text` (a top-level def, decorators included).

    Raises SyntaxError (or ValueError for NUL bytes) if it does not parse, and NotAFunction if
    it does not start with a function definition.
    """
    tree = ast.parse(text)
    if not tree.body or not isinstance(tree.body[0], (ast.FunctionDef, ast.AsyncFunctionDef)):
        first = type(tree.body[0]).__name__ if tree.body else "nothing"
        raise NotAFunction(f"starts with {first}, not a function definition")
    return tree.body[0]


def without_decorators(text: str) -> str:
    """The function's own text: its decorator lines (and any line before its `def`) left out,
    as the published pipeline's tree-sitter extraction gives it. Text that does not parse as a
    function is returned unchanged (a later rule says what is wrong with it)."""
    try:
        node = parse_function(text)
    except (SyntaxError, ValueError, NotAFunction):
        return text
    if not node.decorator_list:
        return text
    return "".join(text.splitlines(keepends=True)[node.lineno - 1 :])


def no_return_value(node: FunctionNode, nested_count: bool = False) -> str | None:
    """Fails unless the function itself has a `return <expression>` (one in a nested def or
    class does not count: it returns from something else), or with `nested_count`, as the
    published pipeline looked, unless there is one anywhere in its text."""
    nodes = list(ast.walk(node) if nested_count else _own_nodes(node))
    if any(isinstance(n, ast.Return) and n.value is not None for n in nodes):
        return None
    bare = any(isinstance(n, ast.Return) for n in nodes)
    return "only bare `return`" if bare else "no `return` statement"


def too_few_arguments(node: FunctionNode, minimum: int) -> str | None:
    """Counts every parameter: positional-only, keyword-only, `*args` and `**kwargs` too."""
    args = node.args
    count = len(args.posonlyargs) + len(args.args) + len(args.kwonlyargs)
    count += (args.vararg is not None) + (args.kwarg is not None)
    return None if count >= minimum else f"{count} arguments, at least {minimum} wanted"


def empty_parentheses_on_def_line(text: str) -> str | None:
    """The published pipeline's test for a function without arguments: a line starting with
    `def ` that contains `():` (column 0 only, so a nested def never counts). It misses
    `async def f():`, `def f() -> int:` and a `def` split over lines."""
    for number, line in enumerate(text.split("\n"), 1):
        if line.startswith("def ") and "():" in line:
            return f"`():` on line {number}"
    return None


def too_long(text: str, max_lines: int) -> str | None:
    lines = len(text.splitlines())
    return None if lines <= max_lines else f"{lines} lines, at most {max_lines} allowed"


def bad_word_pattern(words: list[str], substrings: bool) -> re.Pattern | None:
    """Case-insensitive; whole words (so `bug` does not match `debug`) unless `substrings`."""
    if not words:
        return None
    alternatives = "|".join(re.escape(w) for w in words)
    return re.compile(alternatives if substrings else rf"\b(?:{alternatives})\b", re.IGNORECASE)


def bad_word(text: str, pattern: re.Pattern | None) -> str | None:
    """Anywhere in the text: code, comments, strings and the docstring."""
    match = pattern.search(text) if pattern is not None else None
    if match is None:
        return None
    return f"'{match.group(0)}' on line {text.count(chr(10), 0, match.start()) + 1}"


def bad_import(
    node: FunctionNode, modules: set[str], substring_of: str | None = None
) -> str | None:
    """Fails if the function imports one of `modules` (or a submodule: `import os.path`,
    `from os.path import join`) anywhere inside it, or uses one by name without defining it
    (`os.getcwd()` with no import: the `imports` stage would add `import os`).

    With `substring_of` (the function's text), the first test is the published pipeline's
    instead: `import X` or `from X` anywhere in the lowercased text, so `import osgeo` and a
    docstring's "from os" count, and `import json, os` does not."""
    found = (
        _import_as_substring(substring_of, modules) if substring_of is not None
        else _import_statement(node, modules)
    )  # fmt: skip
    if found:
        return found
    free = sorted(_free_names(node) & modules)
    if free:
        return f"uses `{free[0]}` without importing it, so it would be imported"
    return None


def _import_statement(node: FunctionNode, modules: set[str]) -> str | None:
    for n in ast.walk(node):
        if isinstance(n, ast.Import):
            bad = [alias.name for alias in n.names if _top(alias.name) in modules]
            if bad:
                return f"import {bad[0]} (line {n.lineno})"
        elif isinstance(n, ast.ImportFrom) and not n.level and _top(n.module or "") in modules:
            return f"from {n.module} import ... (line {n.lineno})"
    return None


def _import_as_substring(text: str, modules: set[str]) -> str | None:
    lower = text.lower()
    for module in sorted(modules):
        for phrase in (f"import {module}", f"from {module}"):
            if phrase in lower:
                return f"'{phrase}' in the text (substring)"
    return None


def _top(module: str) -> str:
    return module.split(".", 1)[0]


def _own_nodes(node: FunctionNode) -> Iterator[ast.AST]:
    """Every node of the function's body that belongs to its own scope."""
    stack = [n for n in node.body if not isinstance(n, _SCOPES)]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(c for c in ast.iter_child_nodes(current) if not isinstance(c, _SCOPES))


def _free_names(node: FunctionNode) -> set[str]:
    """Names read in the function (nested scopes included) and bound nowhere in it: an
    over-approximation of scoping that is enough to see a module used without an import."""
    loaded, bound = set(), set()
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            (loaded if isinstance(n.ctx, ast.Load) else bound).add(n.id)
        elif isinstance(n, ast.arg):
            bound.add(n.arg)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".", 1)[0] for a in n.names)
        elif isinstance(n, _NAMED_BINDINGS) and n is not node and n.name:
            bound.add(n.name)
    return loaded - bound
