"""Measuring near-duplicate detection against exact Jaccard similarity (for the benchmark
script and the tests; the stage does not use this).

- `plant_near_duplicates`: variants of some texts made by a few random edits (renaming an
  identifier, deleting or inserting a line, changing a literal), so that the corpus holds pairs
  over the whole range of similarity, mixed in among the originals.
- `similar_pairs`: pairs whose exact Jaccard similarity (over the same shingles as the stage)
  is at least a bound. Candidates come from an independent, liberal MinHash LSH (other seed,
  64 bands of 4 rows: a pair at Jaccard 0.7 is missed with probability ~1e-8), and every
  candidate is checked exactly. Buckets of more than 200 texts contribute only their first 200
  members, so pairs inside huge clusters of boilerplate are sampled, not enumerated.
- `evaluate`: given which row each dropped row was merged into, the recall on similar pairs
  (a pair is caught when its two texts are not both kept; "same cluster" is the stricter
  count) and the exact similarity of every merged pair (dropped row, representative).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

import numpy as np

from builder.stages.dedup.index import NearDuplicateIndex
from builder.stages.dedup.sketch import shingles, signatures

_IDENTIFIER = re.compile(r"\b[A-Za-z_][A-Za-z_0-9]{2,}\b")
_NUMBER = re.compile(r"\b\d+\b")


def plant_near_duplicates(
    texts: Sequence[str], bases: int, variants: int, max_edits: int, seed: int = 0
) -> tuple[list[str], list[int]]:
    """(corpus, origin): the texts plus `variants` edited copies of each of `bases` texts, in a
    shuffled order; origin[i] is the index in the corpus of the text that i was made from, or
    -1 for an original."""
    rng = random.Random(seed)
    chosen = rng.sample(range(len(texts)), bases)
    items = [(text, None) for text in texts]
    for base in chosen:
        for _ in range(variants):
            items.append((_mutate(texts[base], rng, rng.randint(1, max_edits)), base))
    order = list(range(len(items)))
    rng.shuffle(order)
    position = {old: new for new, old in enumerate(order)}
    corpus = [items[old][0] for old in order]
    origin = [-1 if items[old][1] is None else position[items[old][1]] for old in order]
    return corpus, origin


def _mutate(text: str, rng: random.Random, edits: int) -> str:
    for _ in range(edits):
        lines = text.splitlines()
        op = rng.choice(["rename", "delete", "insert", "literal"])
        if op == "rename" and (names := sorted(set(_IDENTIFIER.findall(text)))):
            old = rng.choice(names)
            text = re.sub(rf"\b{old}\b", f"{old}_{rng.randint(0, 99)}", text)
        elif op == "delete" and len(lines) > 2:
            del lines[rng.randrange(1, len(lines))]
            text = "\n".join(lines) + "\n"
        elif op == "literal" and _NUMBER.search(text):
            text = _NUMBER.sub(lambda m: str(int(m.group()) + rng.randint(1, 9)), text, count=1)
        else:  # insert, or an edit that had nothing to work on
            at = rng.randrange(1, len(lines) + 1)
            indent = re.match(r"\s*", lines[min(at, len(lines) - 1)]).group()
            lines.insert(
                at, f"{indent}trace_{rng.randint(0, 999)} = record(step={rng.randint(0, 99)})"
            )
            text = "\n".join(lines) + "\n"
    return text


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


class ShingleSets:
    """Exact shingle sets, computed once per text when first needed."""

    def __init__(self, texts: Sequence[str], ngram: int):
        self.texts, self.ngram, self.cache = texts, ngram, {}

    def __getitem__(self, i: int) -> set:
        if i not in self.cache:
            self.cache[i] = set(shingles(self.texts[i], self.ngram))
        return self.cache[i]

    def jaccard(self, i: int, j: int) -> float:
        return jaccard(self[i], self[j])


def similar_pairs(
    sets: ShingleSets, at_least: float, max_bucket: int = 200
) -> list[tuple[int, int, float]]:
    """(i, j, exact Jaccard) for i < j with Jaccard >= at_least (see the module docstring)."""
    sigs = signatures(sets.texts, num_perm=256, ngram=sets.ngram, seed=20240101)
    bands = sigs.reshape(len(sigs), 64, 4).astype(np.uint64)
    keys = (
        bands
        * np.array([1, 1 << 16, 1 << 32, 1 << 48], dtype=np.uint64)[None, None, :]
        * np.uint64(0x9E3779B97F4A7C15)
    ).sum(axis=2, dtype=np.uint64)
    candidates: set[tuple[int, int]] = set()
    for band in range(64):
        buckets: dict[int, list[int]] = {}
        for i, key in enumerate(keys[:, band].tolist()):
            members = buckets.setdefault(key, [])
            if len(members) < max_bucket:
                members.append(i)
        for members in buckets.values():
            for x in range(len(members)):
                for y in range(x + 1, len(members)):
                    candidates.add((members[x], members[y]))
    pairs = [(i, j, sets.jaccard(i, j)) for i, j in sorted(candidates)]
    return [p for p in pairs if p[2] >= at_least]


def evaluate(
    sets: ShingleSets,
    merged_into: Sequence[int | None],
    truth: list[tuple[int, int, float]],
    sample: int = 20000,
    seed: int = 0,
) -> dict:
    """Recall on `truth` pairs and the exact similarity of merged pairs.

    merged_into[i]: the index of the kept text that dropped text i was merged into, or None if
    text i was kept."""
    rng = random.Random(seed)
    truth = truth if len(truth) <= sample else rng.sample(truth, sample)

    def cluster(i: int) -> int:
        return i if merged_into[i] is None else merged_into[i]

    caught = sum(1 for i, j, _ in truth if merged_into[i] is not None or merged_into[j] is not None)
    together = sum(1 for i, j, _ in truth if cluster(i) == cluster(j))
    merged = [(i, rep) for i, rep in enumerate(merged_into) if rep is not None]
    merged = merged if len(merged) <= sample else rng.sample(merged, sample)
    merged_similarity = [sets.jaccard(i, rep) for i, rep in merged]
    return {
        "pairs": len(truth),
        "recall": caught / len(truth) if truth else float("nan"),
        "recall_same_cluster": together / len(truth) if truth else float("nan"),
        "dropped": sum(rep is not None for rep in merged_into),
        "merged_pairs": len(merged),
        "merged_min_jaccard": min(merged_similarity, default=float("nan")),
        "merged_below_0.3": sum(s < 0.3 for s in merged_similarity),
    }


def greedy_dedup(sigs: np.ndarray, threshold: float) -> list[int | None]:
    """merged_into for signatures, by the stage's own index (see `index.py`)."""

    index = NearDuplicateIndex(threshold, sigs.shape[1])
    kept_rows: list[int] = []
    merged_into: list[int | None] = []
    for row, (sig, keys) in enumerate(zip(sigs, index.band_keys(sigs).tolist())):
        found = index.match(sig, keys)
        if found is None:
            index.add(sig, keys)
            kept_rows.append(row)
            merged_into.append(None)
        else:
            merged_into.append(kept_rows[found[0]])
    return merged_into
