"""The mutants of one Python file, made with `ast`: each is one small change to the source, as
a bug would be (see `mutation.py`, which runs the tests against them).

Operators:
- `compare`: a comparison negated (== / !=, < / >=, > / <=, in / not in, is / is not) or moved
  across its boundary (< / <=, > / >=);
- `boolop`: `and` / `or` swapped; `not`: a `not` removed; `cond`: the test of an `if`, `while` or
  conditional expression that is not already a comparison, `not` or `and`/`or`, negated;
- `const`: an integer changed (0 -> 1, 1 -> 0, n -> n + 1), True / False swapped;
- `arith`: + / -, * / /, // -> *, % -> //, | / &, << / >> swapped;
- `remove`: a statement that has an effect of its own removed (a call, a raise, continue,
  break, an augmented assignment, an assignment to an attribute or item);
- `return`: a returned value replaced by None; `unwith`: a `with` block run without its
  context manager (e.g. without its lock).

Left alone, because a test cannot sensibly tell or the change is not a bug: docstrings, strings
and floats (messages, timeouts), type annotations, and everything inside a logging call, an
f-string or the arguments of a raised exception (its message).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass

FLIPS = {
    ast.Eq: [ast.NotEq], ast.NotEq: [ast.Eq], ast.Lt: [ast.GtE, ast.LtE],
    ast.LtE: [ast.Gt, ast.Lt], ast.Gt: [ast.LtE, ast.GtE], ast.GtE: [ast.Lt, ast.Gt],
    ast.In: [ast.NotIn], ast.NotIn: [ast.In], ast.Is: [ast.IsNot], ast.IsNot: [ast.Is],
}  # fmt: skip
ARITH = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
    ast.FloorDiv: ast.Mult, ast.Mod: ast.FloorDiv, ast.BitOr: ast.BitAnd, ast.BitAnd: ast.BitOr,
    ast.LShift: ast.RShift, ast.RShift: ast.LShift,
}  # fmt: skip
LOGGERS = {"log", "logger", "logging", "warnings"}
PATH_WORDS = ("path", "root", "folder", "dir", "chunks", "spool", "work", "target", "stem")


@dataclass(frozen=True)
class Mutant:
    path: str  # relative to the repository root
    line: int
    end_line: int
    function: str  # the enclosing function ("" at module level)
    operator: str
    description: str  # what changed, e.g. "== -> !="
    start: int  # byte offsets of the replaced span
    end: int
    replacement: str

    @property
    def id(self) -> str:
        return f"{self.path}:{self.line}:{self.start}:{self.operator}:{self.description}"

    def apply(self, source: bytes) -> bytes:
        return source[: self.start] + self.replacement.encode() + source[self.end :]


def mutants(path: str, source: bytes, functions: tuple[str, ...] = ()) -> list[Mutant]:
    """Every mutant of `source` (only inside `functions`, if given) that still compiles."""
    tree = ast.parse(source)
    offsets = _line_offsets(source)
    found = []
    for node, function, change in _changes(tree, "", functions):
        operator, description, new = change
        start = offsets[node.lineno - 1] + node.col_offset
        end = offsets[node.end_lineno - 1] + node.end_col_offset
        text = new if isinstance(new, str) else _text(new, node)
        mutant = Mutant(path, node.lineno, node.end_lineno, function, operator, description,
                        start, end, text)  # fmt: skip
        try:
            compile(mutant.apply(source), path, "exec")
        except SyntaxError:
            continue
        found.append(mutant)
    return found


def _line_offsets(source: bytes) -> list[int]:
    offsets, total = [], 0
    for line in source.splitlines(keepends=True):
        offsets.append(total)
        total += len(line)
    return offsets + [total]


def _text(new: ast.AST, old: ast.AST) -> str:
    if isinstance(new, ast.expr):
        return f"({ast.unparse(new)})"
    return ast.unparse(new).replace("\n", "\n" + " " * old.col_offset)


def _changes(node: ast.AST, function: str, functions: tuple[str, ...]) -> Iterator[tuple]:
    """(node, enclosing function, (operator, description, replacement)) for `node`'s subtree."""
    if _skipped(node):
        return
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        function = node.name if not function else f"{function}.{node.name}"
    wanted = not functions or function.split(".")[0] in functions or function in functions
    if wanted:
        for change in _node_changes(node):
            yield node, function, change
        if isinstance(node, (ast.If, ast.While, ast.IfExp)) and not _is_test_mutated(node.test):
            new = ast.UnaryOp(ast.Not(), node.test)
            yield node.test, function, ("cond", f"{ast.unparse(node.test)[:40]} -> not", new)
    if isinstance(node, ast.Raise):
        return  # removing it is a mutant; its message is not
    for field, value in ast.iter_fields(node):
        if field in ("annotation", "returns", "decorator_list", "type_comment"):
            continue
        children = value if isinstance(value, list) else [value]
        for index, child in enumerate(children):
            if isinstance(child, ast.AST) and not _is_docstring(node, field, index, child):
                yield from _changes(child, function, functions)


def _skipped(node: ast.AST) -> bool:
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.Call):  # a logging call, arguments and all
        root = node.func
        while isinstance(root, ast.Attribute):
            root = root.value
        return isinstance(root, ast.Name) and root.id in LOGGERS
    return False


def _is_docstring(parent, field, index, child) -> bool:
    return (
        field == "body"
        and index == 0
        and isinstance(parent, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        and isinstance(child, ast.Expr)
        and isinstance(child.value, ast.Constant)
        and isinstance(child.value.value, str)
    )


def _node_changes(node: ast.AST) -> Iterator[tuple]:
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        op = type(node.ops[0])
        for new_op in FLIPS.get(op, []):
            new = ast.Compare(node.left, [new_op()], node.comparators)
            yield "compare", f"{_sym(op)} -> {_sym(new_op)}", new
    elif isinstance(node, ast.BoolOp):
        other = ast.Or if isinstance(node.op, ast.And) else ast.And
        yield "boolop", f"{_sym(type(node.op))} -> {_sym(other)}", ast.BoolOp(other(), node.values)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        yield "not", "not x -> x", node.operand
    elif isinstance(node, ast.BinOp) and type(node.op) in ARITH and not _joins_paths(node):
        new_op = ARITH[type(node.op)]
        yield (
            "arith",
            f"{_sym(type(node.op))} -> {_sym(new_op)}",
            ast.BinOp(node.left, new_op(), node.right),
        )
    elif isinstance(node, ast.Constant) and type(node.value) is bool:
        yield "const", f"{node.value} -> {not node.value}", ast.Constant(not node.value)
    elif isinstance(node, ast.Constant) and type(node.value) is int:
        new = {0: 1, 1: 0}.get(node.value, node.value + 1)
        yield "const", f"{node.value} -> {new}", ast.Constant(new)
    yield from _statement_changes(node)


def _has_effect(node: ast.AST) -> bool:
    """A statement whose removal changes nothing but its own effect."""
    if isinstance(node, ast.Expr):
        return isinstance(node.value, (ast.Call, ast.Await)) and not _skipped(node.value)
    if isinstance(node, ast.Assign):
        return all(isinstance(t, (ast.Attribute, ast.Subscript)) for t in node.targets)
    return isinstance(node, (ast.Raise, ast.Continue, ast.Break, ast.AugAssign))


def _joins_paths(node: ast.BinOp) -> bool:
    """`folder / "name"` and the like: a path, not arithmetic (mutants would only crash)."""
    if any(isinstance(o, ast.JoinedStr) or (isinstance(o, ast.Constant) and type(o.value) is str)
           for o in (node.left, node.right)):  # fmt: skip
        return True
    if not isinstance(node.op, ast.Div):
        return False
    left = node.left
    if isinstance(left, ast.BinOp):
        return isinstance(left.op, ast.Div) and _joins_paths(left) or "path" in ast.unparse(left)
    return any(w in ast.unparse(left).lower() for w in PATH_WORDS)


def _is_test_mutated(test: ast.expr) -> bool:
    return isinstance(test, (ast.Compare, ast.BoolOp)) or (
        isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not)
    )


def _statement_changes(node: ast.AST) -> Iterator[tuple]:
    if _has_effect(node):
        yield "remove", f"remove {ast.unparse(node)[:50]}", "pass"
    elif (
        isinstance(node, ast.Return)
        and node.value is not None
        and not (isinstance(node.value, ast.Constant) and node.value.value is None)
    ):
        yield "return", f"return {ast.unparse(node.value)[:40]} -> return None", "return None"
    elif isinstance(node, (ast.With, ast.AsyncWith)) and node.items[0].optional_vars is None:
        body = "\n".join(ast.unparse(s) for s in node.body)
        yield "unwith", f"without {ast.unparse(node.items[0])[:40]}", ast.parse(body)


def _sym(op: type) -> str:
    return {
        ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
        ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not", ast.And: "and",
        ast.Or: "or", ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//",
        ast.Mod: "%", ast.BitOr: "|", ast.BitAnd: "&", ast.LShift: "<<", ast.RShift: ">>",
    }[op]  # fmt: skip
