"""`extract`: top-level Python functions with a triple-quoted docstring, one row per function.

The corpus is a Hub dataset with a `content` column (The Stack v1, streamed), a dataset in the
store (`store:namespace/name[@revision]`), a local directory of `.py` files (a path starting
with `/`, `.` or `~`, or any existing directory; several joined by commas), or the running
interpreter's own code (`python:stdlib`, `python:site-packages`, `python:all`). Files that do
not parse, or cannot be decoded (UTF-8, or their PEP 263 coding line), are dropped and counted; exact duplicate functions (same text after stripping) are dropped across the
whole corpus, keeping the first in corpus order.

Speed: parsing is the cost, so files with no top-level `def` and no triple quote are skipped
unparsed (counted as `files_without_candidates`), and the garbage collector is paused while a
chunk is parsed (syntax trees hold no reference cycles, and the collector's passes over millions
of fresh nodes cost as much as the parse itself).
"""

from __future__ import annotations

import ast
import gc
import hashlib
import os
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from builder.config.fields import added_later, bounded, runtime_only
from builder.errors import RecipeError, StageError
from builder.pipeline.chunk_data import ChunkTask
from builder.pipeline.folder_input import DirInput, python_corpus
from builder.pipeline.input_sources import HubDatasetInput, InputSource
from builder.pipeline.rows import ChunkResult, Drop, Row, RowStage
from builder.pipeline.step import StepParams
from builder.stages import published_rules
from builder.store import split_ref

_TOP_LEVEL_DEF = re.compile(r"^(?:async[ \t]+)?def[ \t]", re.M)
_TRIPLE_QUOTE = re.compile(r"\"\"\"|'''")
_DOCSTRING_OPENING = re.compile(rb"^[rRuU]{0,2}(?:\"\"\"|''')")
_COMMENT_LINE = re.compile(r"([ \t]*)#")
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


@dataclass
class ExtractParams(StepParams):
    source: str = "bigcode/the-stack-dedup"
    data_dir: str | None = "data/python"  # for a Hub source
    split: str = "train"  # for a Hub source
    revision: str | None = None  # of a Hub source; None: its main branch, pinned at start
    content_column: str = "content"
    path_column: str = "max_stars_repo_path"
    repo_column: str = "max_stars_repo_name"
    license_column: str = "max_stars_repo_licenses"
    max_file_bytes: int = bounded(1_000_000, ge=1)
    # Which docstrings count: "any" triple-quoted string (''', r""", ...), or "double": only a
    # non-empty """...""" without prefix, as the published pipeline's tree-sitter query matched.
    docstring_quotes: str = added_later("any")
    # Keep the comment lines that follow the last statement at the body's indentation, as
    # tree-sitter's function node (the published pipeline's text) does.
    trailing_comments: bool = added_later(False)
    num_proc: int = runtime_only(0, ge=0)  # 0: every core

    def __post_init__(self):
        if self.docstring_quotes not in ("any", "double"):
            raise RecipeError(
                "stages.extract.docstring_quotes must be 'any' or 'double', got "
                f"{self.docstring_quotes!r:.40}"
            )
        # An empty source (or an empty part of "dir1,dir2") would read the working directory.
        if not all(part.strip() for part in self.source.split(",")):
            raise RecipeError(
                f"stages.extract.source is empty or has an empty part: {self.source!r:.80}"
            )


class ExtractStage(RowStage):
    name = "extract"
    params_class = ExtractParams
    reads = ("content", "path", "repo", "license")
    adds = (
        "id",
        "function",
        "name",
        "docstring",
        "content_hash",
        "lineno",
        "path",
        "repo",
        "license",
        "source",
    )
    chunk_size = 200
    description = "Top-level Python functions with a triple-quoted docstring."
    # 2: lines split as Python splits them (form feeds, U+2028), a byte order mark skipped,
    # and `source` names a local corpus by its folders only
    version = 2

    params: ExtractParams

    @property
    def _source_label(self) -> str:
        """The `source` column: the recipe's source, or for local folders their names only."""
        source = self.params.source
        if _is_folder(source):
            return "dir:" + ",".join(Path(p).expanduser().resolve().name for p in source.split(","))
        return source

    def num_proc(self) -> int:
        return self.params.num_proc or len(os.sched_getaffinity(0))

    def published_params(self) -> dict:
        return {**super().published_params(), "source": self._source_label}

    def rows_out(self, rows_in: int) -> None:
        return None  # a file gives any number of functions

    def fingerprint_extra(self) -> dict:
        # `ast`'s grammar follows the interpreter: which files parse depends on its version.
        return {"python": "%d.%d" % sys.version_info[:2]}

    def open_input(self, inputs) -> InputSource:
        source = self.params.source
        if source.startswith("store:"):
            repo, revision = split_ref(source[len("store:") :])
            return _Columns(inputs.dataset(repo, revision), self.params)
        if source.startswith("python:"):
            return python_corpus(source[len("python:") :])
        if _is_folder(source):
            return DirInput(source.split(","))  # "dir1,dir2": several folders as one corpus
        hub = HubDatasetInput(source, self.params.data_dir, self.params.split, self.params.revision)
        return _Columns(hub, self.params)

    def process(self, rows: list[Row]) -> ChunkResult:
        result = ChunkResult()
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            for row in rows:
                self._extract_file(row, result)
        finally:
            if gc_was_enabled:
                gc.enable()
        return result

    def _extract_file(self, row: Row, result: ChunkResult) -> None:
        content = row.get("content")
        where = {k: row.get(k) for k in ("path", "repo", "license")}
        result.stats["files"] += 1
        if not isinstance(content, str):
            why = row.get("read_error") or "not UTF-8 text"
            result.dropped.append(Drop(where, "unreadable", why))
            return
        content = content.removeprefix("\ufeff")  # a UTF-8 byte order mark: Python skips it
        if len(content) > self.params.max_file_bytes:
            result.dropped.append(Drop(where, "file_too_large", f"{len(content)} characters"))
            return
        if not (_TOP_LEVEL_DEF.search(content) and _TRIPLE_QUOTE.search(content)):
            result.stats["files_without_candidates"] += 1
            return
        try:
            functions = extract_functions(
                content, self.params.docstring_quotes, self.params.trailing_comments
            )
        except (SyntaxError, ValueError, RecursionError, MemoryError) as err:
            detail = f"{type(err).__name__}: {getattr(err, 'msg', None) or err}"
            result.dropped.append(Drop(where, "syntax_error", detail[:200]))
            return
        if not functions:
            result.stats["files_without_functions"] += 1
        for function in functions:
            result.kept.append({**function, **where, "source": self._source_label})

    def finalize(self, rows: Iterable[Row]) -> Iterator[Row | Drop]:
        seen: set[str] = set()
        for row in rows:
            if row["content_hash"] in seen:
                yield Drop(row, "duplicate", "same text as an earlier function")
                continue
            seen.add(row["content_hash"])
            yield row

    def card_notes(self) -> str:
        p = self.params
        quotes = (
            "a triple-quoted string (any quotes, any prefix)" if p.docstring_quotes == "any"
            else 'a non-empty `"""` string without prefix, as the published pipeline matched'
        )  # fmt: skip
        comments = (
            "with the comment lines that follow its last statement at the body's indentation"
            if p.trailing_comments else "up to its last statement"
        )  # fmt: skip
        return (
            f"Functions are top-level `def`/`async def` whose first statement is {quotes}. "
            f"`function` includes decorators and runs {comments}. `content_hash` is the "
            "SHA-256 of the stripped function text; `id` is its first 16 hex digits."
            + published_rules.card_note("extract", p)
        )


def _is_folder(source: str) -> bool:
    return source.startswith(("/", ".", "~")) or Path(source.split(",")[0]).is_dir()


def extract_functions(
    content: str, docstring_quotes: str = "any", trailing_comments: bool = False
) -> list[Row]:
    """The top-level functions of a module that have a triple-quoted docstring (the two
    settings: `ExtractParams`)."""
    content = content.removeprefix("\ufeff")  # a UTF-8 byte order mark: Python skips it too
    tree = ast.parse(content)
    lines = source_lines(content)
    plain_double = docstring_quotes == "double"
    functions = []
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        docstring = _triple_quoted_docstring(node, lines, plain_double)
        if docstring is None:
            continue
        start = min([node.lineno] + [d.lineno for d in node.decorator_list])
        end = _after_trailing_comments(node, lines) if trailing_comments else node.end_lineno
        text = "".join(lines[start - 1 : end]).rstrip() + "\n"
        digest = hashlib.sha256(text.strip().encode()).hexdigest()
        functions.append(
            {
                "id": digest[:16],
                "function": text,
                "name": node.name,
                "docstring": docstring,
                "content_hash": digest,
                "lineno": start,
            }
        )
    return functions


def source_lines(content: str) -> list[str]:
    """The lines as Python numbers them (ends kept): split at \\n, \\r\\n and \\r only.
    `str.splitlines` also splits at form feeds, U+2028 and other separators that Python
    treats as ordinary characters, which would shift every line after them."""
    return _LINE.findall(content)


def _after_trailing_comments(node: ast.AST, lines: list[str]) -> int:
    """The function's last line counting the comment lines after its last statement that are
    indented at least as its body (blank lines between them too); a line of code, or a comment
    indented less, ends it, as in tree-sitter's grammar."""
    end = node.end_lineno
    if node.body[0].lineno == node.lineno:
        return end  # a body on the `def` line is a simple statement list: no block to extend
    first = lines[node.body[0].lineno - 1]
    body_indent = len(first) - len(first.lstrip(" \t"))
    for number in range(node.end_lineno + 1, len(lines) + 1):
        line = lines[number - 1]
        if not line.strip():
            continue
        comment = _COMMENT_LINE.match(line)
        if comment is None or len(comment.group(1)) < body_indent:
            break
        end = number
    return end


def _triple_quoted_docstring(node: ast.AST, lines: list[str], plain_double: bool) -> str | None:
    """The docstring, if the first statement is a triple-quoted string; with `plain_double`,
    only a non-empty one opening with three double quotes and no prefix."""
    if not node.body:
        return None
    first = node.body[0]
    if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)):
        return None
    if not isinstance(first.value.value, str):
        return None
    # col_offset counts UTF-8 bytes, so look at the encoded line.
    opening = lines[first.lineno - 1].encode()[first.col_offset :]
    if plain_double:
        if not (opening.startswith(b'"""') and first.value.value):
            return None
    elif not _DOCSTRING_OPENING.match(opening):
        return None
    return ast.get_docstring(node, clean=True)


class _Columns(InputSource):
    """Renames a corpus's columns to the names `extract` reads (content, path, repo, license)."""

    def __init__(self, inner: InputSource, params: ExtractParams):
        self.inner = inner
        self.ref = inner.ref
        self.num_rows = inner.num_rows
        self.mapping = {
            "content": params.content_column,
            "path": params.path_column,
            "repo": params.repo_column,
            "license": params.license_column,
        }
        self.columns = ["content", "path", "repo", "license"]
        if params.content_column not in inner.columns:
            raise StageError(
                f"source {inner.describe()} has no column '{params.content_column}' "
                f"(columns: {', '.join(inner.columns)}); set stages.extract.content_column"
            )

    def iter_rows(self) -> Iterator[Row]:
        return (self._mapped(row) for row in self.inner.iter_rows())

    def tasks(self, chunk_size: int, limit: int | None, spool: Path) -> Iterator[ChunkTask]:
        return self.inner.tasks(chunk_size, limit, spool)

    def load(self, task: ChunkTask) -> list[Row]:
        return [self._mapped(row) for row in self.inner.load(task)]

    def _mapped(self, row: Row) -> Row:
        mapped = {ours: row.get(theirs) for ours, theirs in self.mapping.items()}
        if isinstance(mapped["license"], list):  # The Stack lists licenses
            mapped["license"] = ",".join(mapped["license"]) or None
        return mapped
