"""MinHash signatures of many texts at once, bit-identical to datasketch's.

Shingling: a text's tokens are its runs of word characters (`\\w+`: identifiers, keywords,
numbers; punctuation and whitespace only separate them), and its shingles are the runs of
`ngram` consecutive tokens (a text with fewer tokens than that is one shingle of all of them).

Each token is hashed once with xxh3-64 (a per-call cache holds the vocabulary, which repeats a
lot in code); a shingle's 32-bit hash is the top half of a fixed position-weighted sum of its
tokens' hashes, so every shingle of a batch is hashed by a handful of numpy operations instead
of one Python call each. The permutation step is datasketch's `affine32` scheme (its default
since 2.0): MurmurHash3's 32-bit finaliser, then `a * h + b mod 2**32` with datasketch's own
`a`, `b` for the seed. So `signatures(texts)[i]` equals the hash values of
`datasketch.MinHash(num_perm, seed)` updated with every shingle of `texts[i]` when its
`hashfunc` is `shingle_hash`, and the rows can be wrapped in `LeanMinHash` for `MinHashLSH`.

The work is done over blocks of at most `_BLOCK` shingles, so memory stays at a few tens of
MB whatever the batch size.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

TOKEN = re.compile(r"\w+")
SCHEME = "affine32"
_BLOCK = 4096  # shingles per block: 4096 x 256 x 4 bytes = 4 MB of permuted hashes

# Odd 64-bit multipliers, one per position in a shingle (the first digits of pi and e, and
# so on: any fixed odd constants do; they only have to differ from each other).
_POSITION_WEIGHTS = np.array(
    [
        0x243F6A8885A308D3,
        0x13198A2E03707345,
        0xA4093822299F31D1,
        0x082EFA98EC4E6C89,
        0x452821E638D01377,
        0xBE5466CF34E90C6D,
        0xC0AC29B7C97C50DD,
        0x3F84D5B5B5470917,
        0x9216D5D98979FB1B,
        0xD1310BA698DFB5AD,
        0xB8E1AFED6A267E97,
        0x6A2DBCE1F1B4F5C3,
        0xBA7C9045F12C7F99,
        0x24A19947B3916CF7,
        0x0801F2E2858EFC17,
        0x636920D871574E69,
    ],
    dtype=np.uint64,
)
MAX_NGRAM = len(_POSITION_WEIGHTS)


def tokens(text: str) -> list[str]:
    return TOKEN.findall(text)


def shingles(text: str, ngram: int) -> list[tuple[str, ...]]:
    """The shingles of a text as token tuples (for exact Jaccard, and for checking)."""
    toks = tokens(text)
    if len(toks) < ngram:
        return [tuple(toks)] if toks else []
    return [tuple(toks[i : i + ngram]) for i in range(len(toks) - ngram + 1)]


def token_hash(token: str) -> int:
    import xxhash

    return xxhash.xxh3_64_intdigest(token.encode("utf-8", "surrogatepass"))


def shingle_hash(shingle: Sequence[str]) -> int:
    """The 32-bit hash of one shingle, one at a time: the `hashfunc` that makes a datasketch
    MinHash agree with `signatures` (used by the tests and the benchmark, not the stage)."""
    total = 0
    for position, token in enumerate(shingle):
        total += token_hash(token) * int(_POSITION_WEIGHTS[position])
    return (total % (1 << 64)) >> 32


@lru_cache(maxsize=8)
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's own `a`, `b` for (num_perm, seed) in the affine32 scheme."""
    from datasketch import MinHash

    a, b = MinHash(num_perm=num_perm, seed=seed, scheme=SCHEME).permutations
    return a.astype(np.uint32), b.astype(np.uint32)


def signatures(
    texts: Sequence[str], num_perm: int = 256, ngram: int = 5, seed: int = 1
) -> np.ndarray:
    """One row of `num_perm` uint32 MinHash values per text."""
    if not 1 <= ngram <= MAX_NGRAM:
        raise ValueError(f"ngram must be between 1 and {MAX_NGRAM}, got {ngram}")
    hashes, offsets = _shingle_hashes(texts, ngram)
    a, b = permutations(num_perm, seed)
    out = np.full((len(texts), num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
    mixed = _fmix32(hashes)
    start_doc = 0
    while start_doc < len(texts):
        end_doc = _block_end(offsets, start_doc)
        lo, hi = offsets[start_doc], offsets[end_doc]
        if hi > lo:
            # (num_perm, shingles): each document's shingles are contiguous in every row,
            # which makes the per-document minimum (reduceat along rows) fast.
            permuted = a[:, None] * mixed[None, lo:hi]
            permuted += b[:, None]
            starts = offsets[start_doc:end_doc] - lo
            nonempty = offsets[start_doc + 1 : end_doc + 1] > offsets[start_doc:end_doc]
            # reduceat over the starts of non-empty documents only (an empty one has no shingle)
            mins = np.minimum.reduceat(permuted, starts[nonempty], axis=1)
            out[start_doc:end_doc][nonempty] = mins.T
        start_doc = end_doc
    return out


def _block_end(offsets: np.ndarray, start_doc: int) -> int:
    """The end of a block of whole documents starting at `start_doc` (at least one)."""
    limit = offsets[start_doc] + _BLOCK
    end = int(np.searchsorted(offsets, limit, side="right")) - 1
    return max(end, start_doc + 1)


def _shingle_hashes(texts: Sequence[str], ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """All shingle hashes (uint32) of all texts, and offsets: text i owns [off[i], off[i+1])."""
    import xxhash

    hash64 = xxhash.xxh3_64_intdigest
    cache: dict[str, int] = {}
    token_hashes: list[int] = []
    lengths = np.empty(len(texts), dtype=np.int64)
    for i, text in enumerate(texts):
        toks = TOKEN.findall(text)
        lengths[i] = len(toks)
        for tok in toks:
            value = cache.get(tok)
            if value is None:
                value = cache[tok] = hash64(tok.encode("utf-8", "surrogatepass"))
            token_hashes.append(value)
    flat = np.array(token_hashes, dtype=np.uint64)
    token_starts = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=token_starts[1:])
    # Shingles per text: len - ngram + 1, or one for a short non-empty text, or none.
    counts = np.where(lengths >= ngram, lengths - ngram + 1, (lengths > 0).astype(np.int64))
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    # The first token of every shingle, and how many tokens it has (ngram, or fewer if short).
    first = np.repeat(token_starts[:-1], counts) + (
        np.arange(offsets[-1]) - np.repeat(offsets[:-1], counts)
    )
    width = np.repeat(np.minimum(lengths, ngram), counts)
    total = np.zeros(offsets[-1], dtype=np.uint64)
    for position in range(ngram):
        present = width > position
        index = np.where(present, first + position, 0)
        term = flat[index] * _POSITION_WEIGHTS[position] if len(flat) else total
        total += np.where(present, term, np.uint64(0))
    return (total >> np.uint64(32)).astype(np.uint32), offsets


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finaliser, as datasketch applies it before permuting."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))
