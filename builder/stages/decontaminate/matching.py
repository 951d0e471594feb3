"""Finding benchmark text inside functions: normalisation, the trivial rule, the matcher.

Normalisation: every whitespace character is deleted (`"".join(text.split())`). So indentation,
line breaks, blank lines, trailing spaces and the spacing between tokens never matter: `a + b`
and `a+b` are the same, and a solution re-indented inside a bigger function still matches.
Anything else (quotes, comments, renamed variables) does matter: this finds copies, not
paraphrases. Deleting rather than collapsing whitespace can only glue words together
(`return x` -> `returnx`), which cannot create a match on its own for pieces this long.

A benchmark string (a "piece") matches a function when the normalised piece is a substring of
the normalised function text. Trivial pieces are not searched for (see `is_trivial`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# A piece this short once normalised is too common to mean anything (`returnx+y` is 9).
MIN_PIECE_CHARS = 20


@dataclass(frozen=True)
class Piece:
    """One string of one benchmark task that must not appear in the training data."""

    benchmark: str  # recipe name, e.g. "humaneval+"
    task_id: str  # e.g. "HumanEval/12"
    field: str  # "prompt", "docstring" or "canonical_solution"
    text: str


def normalise(text: str) -> str:
    return "".join(text.split())


def code_lines(text: str) -> int:
    """Lines that are neither blank nor only a comment."""
    return sum(
        1 for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    )


def is_trivial(piece: Piece) -> bool:
    """A piece that is not searched for.

    - A canonical solution with at most one code line (`return x + y`,
      `return sorted(set(l))`): one-liners recur everywhere, and a function that really copies
      a benchmark task also carries its prompt or docstring, which are still searched for.
      HumanEval solutions are bodies, so this exempts one-line bodies; MBPP solutions are whole
      functions (`def` line included), so they have two lines at least and are all searched.
    - Any piece shorter than MIN_PIECE_CHARS characters once normalised.
    """
    if piece.field == "canonical_solution" and code_lines(piece.text) <= 1:
        return True
    return len(normalise(piece.text)) < MIN_PIECE_CHARS


class Matcher:
    """Every non-trivial piece in one Aho-Corasick automaton: one pass over a function finds
    all the pieces it contains, whatever their number."""

    def __init__(self, pieces: Iterable[Piece]):
        import ahocorasick

        self.automaton = ahocorasick.Automaton()
        self.labels: list[list[Piece]] = []
        self.trivial: list[Piece] = []
        index_of: dict[str, int] = {}
        for piece in pieces:
            if is_trivial(piece):
                self.trivial.append(piece)
                continue
            key = normalise(piece.text)
            if key not in index_of:  # identical text in several tasks: one key, all labels
                index_of[key] = len(self.labels)
                self.labels.append([])
                self.automaton.add_word(key, index_of[key])
            self.labels[index_of[key]].append(piece)
        self.searched = sum(len(labels) for labels in self.labels)
        if self.labels:
            self.automaton.make_automaton()

    def find(self, text: str) -> list[Piece]:
        """The pieces contained in `text`, in a fixed order (benchmark, task, field)."""
        if not self.labels:
            return []
        found = {id(p): p for _, i in self.automaton.iter(normalise(text)) for p in self.labels[i]}
        return sorted(found.values(), key=lambda p: (p.benchmark, p.task_id, p.field))


def describe_matches(pieces: list[Piece], limit: int = 300) -> str:
    """`humaneval+ HumanEval/12 (canonical_solution, docstring); mbpp+ Mbpp/3 (prompt)`."""
    fields: dict[tuple[str, str], list[str]] = {}
    for piece in pieces:
        names = fields.setdefault((piece.benchmark, piece.task_id), [])
        if piece.field not in names:
            names.append(piece.field)
    parts = [
        f"{bench} {task} ({', '.join(sorted(names))})" for (bench, task), names in fields.items()
    ]
    text = "; ".join(parts)
    if len(text) > limit:
        text = text[: limit - 20].rsplit("; ", 1)[0] + f"; and {len(parts)} tasks in all"
    return text
