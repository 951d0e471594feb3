"""Mutants: small deliberate breaks of an implementation, to measure how strong its tests are.

A test block that passes on the implementation and still passes on a broken copy did not notice
the break. `mutate` runs a sample's own tests against a handful of mutants and publishes the
fraction caught (its test strength). The operators, each one change of the syntax tree:

- `compare`: a comparison moved across its boundary or negated (`<` and `<=`, `>` and `>=`,
  `==` and `!=`, `in` and `not in`, `is` and `is not`);
- `arithmetic`: an operator swapped for its partner (`+` `-`, `*` `//`, `/` `*`, `%` `//`,
  `**` `*`, `&` `|`, `<<` `>>`), in expressions and augmented assignments;
- `boolean`: `and` and `or` swapped, a `not` cancelled (`not x` made `not not x`);
- `constant`: a number off by one, `True` and `False` swapped;
- `branch`: an `if` whose body is removed (its `else`, if any, runs in its place);
- `statement`: an assignment or a call statement (not a `print`) replaced by `pass`;
- `return`: a returned value replaced by `None`.

Docstrings, annotations, imports and f-strings are never mutated: a change there is either
invisible or a crash that says nothing about the tests. Mutants are chosen deterministically from
the code and a seed: the candidate sites are shuffled per operator, then taken round-robin across
operators, so a few mutants already cover several kinds of break. A mutant is the code as
`ast.unparse` writes it (comments and layout go); one that unparses to the same text as the
original, or as an earlier mutant, is skipped.

Limits, as with any mutation testing: a mutant may be equivalent to the original (`x * 1` made
`x // 1` on integers), and no test can catch it, so a strength of 1.0 is rarely reachable on
real code; compare strengths, do not read them as a proportion of bugs caught.
"""

from __future__ import annotations

import ast
import copy
import random
from collections.abc import Iterator
from dataclasses import dataclass

OPERATORS = ("compare", "arithmetic", "boolean", "constant", "branch", "statement", "return")

_COMPARE = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
}  # fmt: skip
_ARITHMETIC = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.FloorDiv, ast.FloorDiv: ast.Mult,
    ast.Div: ast.Mult, ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult, ast.BitAnd: ast.BitOr,
    ast.BitOr: ast.BitAnd, ast.LShift: ast.RShift, ast.RShift: ast.LShift,
}  # fmt: skip
_SKIPPED_FIELDS = {"annotation", "returns", "type_comment", "type_params"}


@dataclass(frozen=True)
class Mutant:
    operator: str
    line: int  # of the changed node, in the original code
    code: str  # the whole implementation with the one change


@dataclass(frozen=True)
class _Site:
    operator: str
    node: int  # the node's position in `_walk` order
    detail: int = 0  # which comparison of a chain


def mutants(code: str, limit: int, seed: int = 0) -> list[Mutant]:
    """Up to `limit` distinct mutants of `code` (none if it does not parse), the same ones for
    the same code and seed."""
    try:
        tree = ast.parse(code)
        original = ast.unparse(tree)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    by_operator: dict[str, list[_Site]] = {op: [] for op in OPERATORS}
    for index, (node, _) in enumerate(_walk(tree)):
        for site in _sites(node, index):
            by_operator[site.operator].append(site)
    rng = random.Random(f"{seed}\0{code}")
    for sites in by_operator.values():
        rng.shuffle(sites)
    found: list[Mutant] = []
    seen = {original}
    for site in _round_robin(by_operator):
        if len(found) >= limit:
            break
        mutant = _apply(tree, site)
        if mutant is not None and mutant.code not in seen:
            seen.add(mutant.code)
            found.append(mutant)
    return found


def _round_robin(by_operator: dict[str, list[_Site]]) -> Iterator[_Site]:
    queues = [list(sites) for sites in by_operator.values() if sites]
    while queues:
        for queue in queues:
            yield queue.pop(0)
        queues = [queue for queue in queues if queue]


def _walk(tree: ast.AST) -> Iterator[tuple[ast.AST, tuple[list, int] | None]]:
    """Every mutable node in a fixed pre-order, with (the list holding it, its position) for
    statements. Docstrings, annotations, imports and f-strings are left out with their
    subtrees."""
    stack: list[tuple[ast.AST, tuple[list, int] | None]] = [(tree, None)]
    while stack:
        node, place = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.JoinedStr)) or _is_docstring(node):
            continue
        yield node, place
        children: list[tuple[ast.AST, tuple[list, int] | None]] = []
        for name, value in ast.iter_fields(node):
            if name in _SKIPPED_FIELDS:
                continue
            if isinstance(value, list):
                children += [
                    (item, (value, i) if isinstance(item, ast.stmt) else None)
                    for i, item in enumerate(value)
                    if isinstance(item, ast.AST)
                ]
            elif isinstance(value, ast.AST):
                children.append((value, None))
        stack.extend(reversed(children))


def _is_docstring(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def _sites(node: ast.AST, index: int) -> Iterator[_Site]:
    if isinstance(node, ast.Compare):
        for position, op in enumerate(node.ops):
            if type(op) in _COMPARE:
                yield _Site("compare", index, position)
    elif isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in _ARITHMETIC:
        yield _Site("arithmetic", index)
    elif isinstance(node, ast.BoolOp) or (
        isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)
    ):
        yield _Site("boolean", index)
    elif isinstance(node, ast.Constant) and isinstance(node.value, (bool, int, float)):
        yield _Site("constant", index)
    elif isinstance(node, ast.Return) and not _returns_none(node):
        yield _Site("return", index)
    if isinstance(node, ast.If):
        yield _Site("branch", index)
    elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr)):
        if not (isinstance(node, ast.AnnAssign) and node.value is None) and not _prints(node):
            yield _Site("statement", index)


def _prints(node: ast.AST) -> bool:
    """A `print(...)` statement: removing it changes only the output, which tests rarely see."""
    call = getattr(node, "value", None)
    return (
        isinstance(node, ast.Expr)
        and isinstance(call, ast.Call)
        and (isinstance(call.func, ast.Name) and call.func.id == "print")
    )


def _returns_none(node: ast.Return) -> bool:
    return node.value is None or (isinstance(node.value, ast.Constant) and node.value.value is None)


def _apply(tree: ast.AST, site: _Site) -> Mutant | None:
    copied = copy.deepcopy(tree)
    for index, (node, place) in enumerate(_walk(copied)):
        if index == site.node:
            line = getattr(node, "lineno", 0)
            _mutate(node, place, site)
            try:
                return Mutant(site.operator, line, ast.unparse(ast.fix_missing_locations(copied)))
            except (ValueError, RecursionError):
                return None
    return None


def _mutate(node, place: tuple[list, int] | None, site: _Site) -> None:
    if site.operator == "compare":
        node.ops[site.detail] = _COMPARE[type(node.ops[site.detail])]()
    elif site.operator == "arithmetic":
        node.op = _ARITHMETIC[type(node.op)]()
    elif site.operator == "boolean" and isinstance(node, ast.BoolOp):
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif site.operator == "boolean":  # `not x` -> `not not x`: the truth of x, negation gone
        node.operand = ast.UnaryOp(ast.Not(), node.operand)
    elif site.operator == "constant":
        value = node.value
        node.value = (not value) if isinstance(value, bool) else value + 1
    elif site.operator == "return":
        node.value = ast.Constant(None)
    elif place is not None:  # branch, statement: replaced in the list that holds it
        holder, position = place
        replacement = node.orelse if site.operator == "branch" else []
        holder[position : position + 1] = replacement or [ast.Pass()]
