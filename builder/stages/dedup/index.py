"""Greedy near-duplicate detection over MinHash signatures, in input order.

Each text is compared only with the texts kept before it: LSH banding finds candidates (the
bands `b` and rows per band `r` are the ones datasketch's `MinHashLSH` picks for the threshold
and number of permutations, and two signatures are candidates exactly when datasketch's index
would say so, up to 64-bit hash collisions), and a candidate counts when the signatures'
estimated Jaccard similarity (the fraction of equal values) is at least the threshold. A text
with such a kept candidate is a duplicate of the most similar one (the earliest on ties) and is
not indexed itself, so every duplicate is directly similar to its representative: clusters do
not grow by chains. The result depends only on the input order.

Why not datasketch's `MinHashLSH` itself: it keeps a bytes object per band and a set per bucket,
about 14 KB and 190 us per indexed text here; this index keeps one dict entry per band (about
3 KB with the signature) and takes about 25 us. The kept signatures stay in memory: a 1M-text
input with most texts kept needs about 4 GB.
"""

from __future__ import annotations

import numpy as np

# Mixes a band's values into one 64-bit key; one odd multiplier per row of a band, and a
# per-band offset so that equal values in different bands do not share a key.
_ROW_WEIGHTS = np.array(
    [(0x9E3779B97F4A7C15 * (k + 1)) % (1 << 64) | 1 for k in range(64)], dtype=np.uint64
)
_BAND_OFFSET = np.uint64(0xD6E8FEB86659FD93)


def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band) as datasketch chooses them (equal false positive/negative weights)."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    return lsh.b, lsh.r


class NearDuplicateIndex:
    def __init__(self, threshold: float, num_perm: int):
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self.num_perm = num_perm
        self.bands, self.rows = lsh_params(threshold, num_perm)
        self._buckets: dict[int, int | list[int]] = {}
        self._kept = np.empty((1024, num_perm), dtype=np.uint32)
        self.size = 0

    def band_keys(self, signatures: np.ndarray) -> np.ndarray:
        """(n, bands) uint64 keys of n signatures (vectorised: call it on a batch)."""
        n = signatures.shape[0]
        used = signatures[:, : self.bands * self.rows].reshape(n, self.bands, self.rows)
        keys = (used.astype(np.uint64) * _ROW_WEIGHTS[: self.rows]).sum(axis=2, dtype=np.uint64)
        return keys + np.arange(self.bands, dtype=np.uint64) * _BAND_OFFSET

    def candidates(self, keys: list[int]) -> set[int]:
        """Kept texts sharing at least one band with these keys."""
        found: set[int] = set()
        for key in keys:
            hit = self._buckets.get(key)
            if hit is None:
                continue
            if type(hit) is list:
                found.update(hit)
            else:
                found.add(hit)
        return found

    def match(self, signature: np.ndarray, keys: list[int]) -> tuple[int, float] | None:
        """(kept index, estimated Jaccard) of the most similar kept text at or above the
        threshold, the earliest on ties; None if there is none."""
        found = self.candidates(keys)
        if not found:
            return None
        order = np.fromiter(sorted(found), dtype=np.int64, count=len(found))
        similarity = (self._kept[order] == signature).mean(axis=1)
        best = int(np.argmax(similarity))  # argmax: the first maximum, i.e. the earliest
        if similarity[best] < self.threshold:
            return None
        return int(order[best]), float(similarity[best])

    def add(self, signature: np.ndarray, keys: list[int]) -> int:
        """Index a kept text; returns its kept index (0, 1, 2, ... in the order added)."""
        index = self.size
        if index == len(self._kept):
            self._kept = np.concatenate([self._kept, np.empty_like(self._kept)])
        self._kept[index] = signature
        self.size += 1
        buckets = self._buckets
        for key in keys:
            hit = buckets.get(key)
            if hit is None:
                buckets[key] = index
            elif type(hit) is list:
                hit.append(index)
            else:
                buckets[key] = [hit, index]
        return index
