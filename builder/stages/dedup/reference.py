"""`dedup` in reference mode: near-duplicates clustered as the published pipeline's tool does.

StarCoder2-Instruct deduplicated its seeds with text-dedup's MinHash (threshold 0.5). That tool
differs from our verified mode in what the threshold means, not only in its hashing:

- shingles: the lowercased text split on every non-word character (`\\W`, so a run of
  punctuation gives empty tokens, which count), `ngram` consecutive tokens joined by a space; a
  text of fewer than `MIN_TOKENS` tokens has none (text-dedup removes it from its input);
- hashing: the first 4 bytes of each shingle's SHA-1 (little-endian), permuted as
  `(h * a + b) mod (2**61 - 1)`, kept to 32 bits, with `a`, `b` drawn from numpy's
  `RandomState(seed)` (64-bit arithmetic wraps, as numpy's does);
- clustering: LSH buckets (bands and rows as datasketch chooses them for the threshold); every
  text that shares a bucket with another is united with the bucket's smallest index, without
  comparing the two (a bucket can hold texts far below the threshold), transitively (union-find
  with union by rank; a component's root is kept, all others are dropped: the root is not the
  earliest text, e.g. of a pair in one bucket the later one is kept).

So two texts in one cluster may be far less similar than the threshold, and more texts are
dropped than in verified mode at the same threshold. The functions below rebuild that behaviour
(our own code, written from the tool's published behaviour), so that a recipe can reproduce the
published seeds; `benchmarks/bench_dedup_reference.py` measures the agreement with text-dedup
itself. Clustering needs every row's band keys at once: the finalize step holds the rows of the
stage in memory (about the row's size plus 1 KB of signature each).
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections import Counter, defaultdict

import numpy as np

MIN_TOKENS = 5  # text-dedup's `min_length`: texts with fewer tokens are not deduplicated
_NON_WORD = re.compile(r"\W", re.UNICODE)
_PRIME = np.uint64((1 << 61) - 1)
_MAX_HASH = np.uint64((1 << 32) - 1)


def shingles(text: str, ngram: int) -> set[bytes]:
    tokens = _NON_WORD.split(text.lower())
    if len(tokens) < MIN_TOKENS:
        return set()
    if len(tokens) < ngram:
        return {" ".join(tokens).encode()}
    return {" ".join(tokens[i : i + ngram]).encode() for i in range(len(tokens) - ngram + 1)}


def shingle_hash(shingle: bytes) -> int:
    """The first 4 bytes of the shingle's SHA-1, little-endian (text-dedup's `sha1_hash`, 32
    bits)."""
    return struct.unpack("<I", hashlib.sha1(shingle, usedforsecurity=False).digest()[:4])[0]


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(seed)
    a = rng.randint(1, _PRIME, size=(num_perm,), dtype=np.uint64)
    b = rng.randint(0, _PRIME, size=(num_perm,), dtype=np.uint64)
    return a, b


def signatures(texts: list[str], num_perm: int, ngram: int, seed: int) -> np.ndarray:
    """(n, num_perm) uint32 MinHash values; a text without shingles is all 2**32 - 1."""
    a, b = permutations(num_perm, seed)
    out = np.full((len(texts), num_perm), _MAX_HASH, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for i, text in enumerate(texts):
            found = shingles(text, ngram)
            if not found:
                continue
            hashes = np.array([shingle_hash(s) for s in found], dtype=np.uint64).reshape(-1, 1)
            values = (hashes * a + b) % _PRIME & _MAX_HASH
            out[i] = np.minimum(values.min(axis=0), _MAX_HASH)
    return out.astype(np.uint32)


def band_keys(signature: np.ndarray, bands: int, rows: int) -> list[bytes]:
    return [signature[i * rows : (i + 1) * rows].tobytes() for i in range(bands)]


class UnionFind:
    """Union by rank with path compression; on equal ranks the first argument's root wins
    (the tie rule decides which text of a component is kept)."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}
        self.rank: Counter = Counter()

    def find(self, x: int) -> int:
        root = x
        while self.parent.setdefault(root, root) != root:
            root = self.parent[root]
        while self.parent[x] != root:  # compress the path
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, x: int, y: int) -> None:
        px, py = self.find(x), self.find(y)
        if px == py:
            return
        if self.rank[px] == self.rank[py]:
            self.parent[py] = px
            self.rank[px] += 1
        elif self.rank[px] > self.rank[py]:
            self.parent[py] = px
        else:
            self.parent[px] = py


def cluster(keys: list[list[bytes] | None]) -> list[int]:
    """Each text's component root (its own index when it is kept). `keys[i]`: text i's band keys,
    or None for a text without shingles (never clustered). Buckets are filled in index order
    and visited band by band, in the order their first member arrived, as text-dedup does."""
    tables: list[dict[bytes, set[int]]] = []
    for index, text_keys in enumerate(keys):
        if text_keys is None:
            continue
        if not tables:
            tables = [defaultdict(set) for _ in text_keys]
        for table, key in zip(tables, text_keys):
            table[key].add(index)
    found = UnionFind()
    for table in tables:
        for members in table.values():
            if len(members) <= 1:
                continue
            smallest = min(members)
            for member in members:
                found.union(member, smallest)
    return [found.find(i) for i in range(len(keys))]
