"""Benchmark tasks -> the pieces of text to search for, one parser per benchmark format.

- HumanEval(+) (EvalPlus jsonl): `prompt` holds imports, the signature and the docstring (and
  for a few tasks helper functions before the entry point); `canonical_solution` is the body.
  Pieces: the prompt from the entry point's `def` line to its end (a function in a corpus
  has no imports above it, so the whole prompt would never match), the docstring as written in
  the prompt (the text between its quotes), and the solution.
- MBPP(+) (EvalPlus jsonl): `prompt` is the task's one-sentence description in quotes (there is
  no docstring field: the description is what a copied function would carry as docstring);
  `canonical_solution` is a module. Pieces: the description, and for every function in the
  solution its whole source (decorators and `def` line included) and its body.
- DS-1000 (`xlangai/DS-1000` test.jsonl): pieces: the problem statement (the prompt's text
  between `Problem:` and the `A:` line, or the whole prompt) and `reference_code`.
- LiveCodeBench (`livecodebench/code_generation_lite` jsonl): no solutions are published;
  piece: `question_content`, the problem statement.
"""

from __future__ import annotations

import ast
import re
import warnings
from collections.abc import Callable, Iterable

from builder.errors import StageError
from builder.stages.decontaminate.matching import Piece

Row = dict


def humaneval_pieces(name: str, row: Row) -> list[Piece]:
    task = _field(name, row, "task_id")
    prompt, solution = _field(name, row, "prompt"), _field(name, row, "canonical_solution")
    pieces = [Piece(name, task, "canonical_solution", solution)]
    entry = _entry_point(prompt, row.get("entry_point"))
    if entry is None:  # not parseable: search for the prompt as it is
        return pieces + [Piece(name, task, "prompt", prompt)]
    lines = prompt.splitlines(keepends=True)
    start = min([entry.lineno] + [d.lineno for d in entry.decorator_list])
    pieces.append(Piece(name, task, "prompt", "".join(lines[start - 1 :])))
    docstring = _raw_docstring(entry, lines)
    if docstring is not None:
        pieces.append(Piece(name, task, "docstring", docstring))
    return pieces


def mbpp_pieces(name: str, row: Row) -> list[Piece]:
    task = _field(name, row, "task_id")
    prompt, solution = _field(name, row, "prompt"), _field(name, row, "canonical_solution")
    pieces = [Piece(name, task, "prompt", _unquote(prompt))]
    try:
        tree = _parse(solution)
    except SyntaxError:
        return pieces + [Piece(name, task, "canonical_solution", solution)]
    lines = solution.splitlines(keepends=True)
    functions = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if not functions:  # no function: the module without its imports
        kept = [
            ast.get_source_segment(solution, n) or ""
            for n in tree.body
            if not isinstance(n, (ast.Import, ast.ImportFrom))
        ]
        return pieces + [Piece(name, task, "canonical_solution", "\n".join(kept))]
    for function in functions:
        start = min([function.lineno] + [d.lineno for d in function.decorator_list])
        whole = "".join(lines[start - 1 : function.end_lineno])
        pieces.append(Piece(name, task, "canonical_solution", whole))
        pieces.append(Piece(name, task, "canonical_solution", _body(function, lines)))
    return pieces


def ds1000_pieces(name: str, row: Row) -> list[Piece]:
    metadata = row.get("metadata") or {}
    problem_id = metadata.get("problem_id", row.get("problem_id"))
    if problem_id is None:
        raise StageError(f"benchmark '{name}': a row has no metadata.problem_id (is it DS-1000?)")
    task = f"DS-1000/{problem_id}"
    prompt = _field(name, row, "prompt")
    statement = re.search(r"Problem:\s*(.*?)\n\s*A:\s*\n", prompt, re.DOTALL)
    pieces = [Piece(name, task, "prompt", statement.group(1) if statement else prompt)]
    return pieces + [Piece(name, task, "canonical_solution", _field(name, row, "reference_code"))]


def livecodebench_pieces(name: str, row: Row) -> list[Piece]:
    task = f"LiveCodeBench/{_field(name, row, 'question_id')}"
    return [Piece(name, task, "prompt", _field(name, row, "question_content"))]


PARSERS: dict[str, Callable[[str, Row], list[Piece]]] = {
    "humaneval": humaneval_pieces,
    "mbpp": mbpp_pieces,
    "ds1000": ds1000_pieces,
    "livecodebench": livecodebench_pieces,
}


def pieces_of(name: str, kind: str, rows: Iterable[Row]) -> tuple[int, list[Piece]]:
    """(number of tasks, their pieces) for rows in benchmark format `kind`."""
    parse = PARSERS[kind]
    tasks, pieces = 0, []
    for row in rows:
        tasks += 1
        pieces.extend(parse(name, row))
    return tasks, pieces


def _parse(source: str) -> ast.Module:
    with warnings.catch_warnings():  # benchmark code has invalid escapes ('\w' in a str)
        warnings.simplefilter("ignore")
        return ast.parse(source)


def _field(name: str, row: Row, key: str) -> str:
    value = row.get(key)
    if not isinstance(value, (str, int)):
        raise StageError(
            f"benchmark '{name}': a row has no '{key}' field (is the file the right benchmark?)"
        )
    return str(value)


def _entry_point(
    prompt: str, entry_point: str | None
) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    """The prompt's entry-point function: the one named `entry_point`, else the last one."""
    try:
        tree = _parse(prompt)
    except SyntaxError:
        return None
    functions = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    named = [f for f in functions if f.name == entry_point]
    return (named or functions or [None])[-1]


def _raw_docstring(function: ast.AST, lines: list[str]) -> str | None:
    """A docstring exactly as written between its quotes (escapes not interpreted), since
    that is how a copy of it appears in a function's source."""
    first = function.body[0] if function.body else None
    if not (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        return None
    literal = _segment(
        lines, first.lineno, first.col_offset, first.end_lineno, first.end_col_offset
    )
    return _unquote(literal)


def _unquote(literal: str) -> str:
    """The text of a string literal between its quotes (prefix and quotes removed)."""
    text = literal.strip().lstrip("rRuUbB")
    for quote in ('"""', "'''", '"', "'"):
        if len(text) >= 2 * len(quote) and text.startswith(quote) and text.endswith(quote):
            return text[len(quote) : -len(quote)]
    return literal


def _body(function: ast.AST, lines: list[str]) -> str:
    first = function.body[0]
    return _segment(
        lines, first.lineno, first.col_offset, function.end_lineno, function.end_col_offset
    )


def _segment(lines: list[str], lineno: int, col: int, end_lineno: int, end_col: int) -> str:
    """Source text between two AST positions (columns count UTF-8 bytes)."""
    if lineno == end_lineno:
        return lines[lineno - 1].encode()[col:end_col].decode()
    first = lines[lineno - 1].encode()[col:].decode()
    last = lines[end_lineno - 1].encode()[:end_col].decode()
    return first + "".join(lines[lineno : end_lineno - 1]) + last
