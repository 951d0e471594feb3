"""Near-duplicate detection: speed and quality of `dedup` against plain datasketch.

    python benchmarks/bench_dedup.py [--source python:all] [--limit N] [--planted-base 4000]

Two corpora: (1) functions with planted near-duplicates (edited copies of some functions, see
`builder.stages.dedup.quality`), and (2) every documented function of the running Python's standard
library and site-packages (exact duplicates removed, as `extract` does). On each, two methods:

- baseline: datasketch as its documentation shows it: one `MinHash` per function updated shingle
  by shingle (`MinHash.update`, SHA-1 of each shingle), a `MinHashLSH` queried then inserted
  per function, candidates checked with `MinHash.jaccard`;
- ours: the `dedup` stage's own `process` (vectorised signatures) and `finalize` (its index).

Both use the same shingles (5-grams of word tokens), 256 permutations, threshold 0.5, and keep
the first function of each cluster. Printed: signature throughput (functions/s, one process),
index time per function, index memory per kept function, and quality against exact Jaccard:
recall on pairs with exact Jaccard >= 0.7 (caught: not both kept; same cluster: merged
together) and the exact Jaccard of merged pairs (a dropped function and the one it was merged
into). Targets: ours >= 10x the baseline's signature throughput, recall >= 0.95, no merged
pair below 0.3.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import random
import time
import tracemalloc

from tqdm.auto import tqdm

from builder.pipeline.folder_input import python_corpus
from builder.stages.dedup.quality import ShingleSets, evaluate, plant_near_duplicates, similar_pairs
from builder.stages.dedup.sketch import shingles
from builder.stages.dedup.stage import DedupParams, DedupStage
from builder.stages.extract import extract_functions

THRESHOLD, NUM_PERM, NGRAM = 0.5, 256, 5


def corpus_functions(source: str, limit: int | None) -> list[str]:
    """Documented top-level functions, exact duplicates removed, in corpus order."""
    files = python_corpus(source.removeprefix("python:")).files
    seen, texts = set(), []
    for _, path, _ in tqdm(files, desc="extract", unit="file", mininterval=1.0):
        try:
            functions = extract_functions(path.read_text(encoding="utf-8"))
        except (SyntaxError, ValueError, UnicodeDecodeError, RecursionError, OSError):
            continue
        for function in functions:
            if function["content_hash"] not in seen:
                seen.add(function["content_hash"])
                texts.append(function["function"])
    return texts[:limit] if limit else texts


def ours(texts: list[str]) -> tuple[list[int | None], float, float]:
    """(merged_into, signature seconds, index seconds) through the stage's own code."""
    stage = DedupStage(DedupParams(threshold=THRESHOLD, num_perm=NUM_PERM, ngram=NGRAM))
    rows = [{"id": f"{i:08d}", "function": text, "name": ""} for i, text in enumerate(texts)]
    started = time.perf_counter()
    kept = []
    for start in range(0, len(rows), stage.chunk_size):
        kept += stage.process(rows[start : start + stage.chunk_size]).kept
    signed = time.perf_counter()
    merged_into: list[int | None] = []
    for item in stage.finalize(kept):
        row = getattr(item, "row", item)
        merged_into.append(None if row["id"] == row["cluster_id"] else int(row["cluster_id"]))
    return merged_into, signed - started, time.perf_counter() - signed


def baseline_signatures(texts: list[str]) -> tuple[list, float]:
    from datasketch import MinHash

    started = time.perf_counter()
    minhashes = []
    for text in tqdm(texts, desc="baseline MinHash.update", unit="fn", mininterval=1.0):
        minhash = MinHash(num_perm=NUM_PERM)
        for shingle in shingles(text, NGRAM):
            minhash.update(" ".join(shingle).encode("utf-8", "surrogatepass"))
        minhashes.append(minhash)
    return minhashes, time.perf_counter() - started


def bulk_signatures_rate(texts: list[str]) -> float:
    """datasketch's batch API, for reference (functions/s)."""
    from datasketch import MinHash

    sample = texts[:2000]
    data = [
        [" ".join(s).encode("utf-8", "surrogatepass") for s in shingles(t, NGRAM)] for t in sample
    ]
    started = time.perf_counter()
    MinHash.bulk(data, num_perm=NUM_PERM)
    return len(sample) / (time.perf_counter() - started)


def baseline_index(minhashes: list) -> tuple[list[int | None], float]:
    from datasketch import LeanMinHash, MinHashLSH

    started = time.perf_counter()
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
    merged_into: list[int | None] = []
    for i, minhash in enumerate(minhashes):
        lean = LeanMinHash(minhash)
        scored = [(lean.jaccard(minhashes[k]), -k) for k in lsh.query(lean)]
        best = max(scored, default=None)
        if best is not None and best[0] >= THRESHOLD:
            merged_into.append(-best[1])
            continue
        lsh.insert(i, lean, check_duplication=False)
        merged_into.append(None)
    return merged_into, time.perf_counter() - started


def index_memory(texts: list[str], count: int) -> tuple[float, float]:
    """Bytes per indexed function: datasketch's MinHashLSH and ours (random distinct texts)."""
    from datasketch import LeanMinHash, MinHashLSH

    from builder.stages.dedup import NearDuplicateIndex, signatures

    sigs = signatures(texts[:count], NUM_PERM, NGRAM)
    tracemalloc.start()
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
    for i, sig in enumerate(sigs):
        lsh.insert(
            i, LeanMinHash(seed=1, hashvalues=sig, scheme="affine32"), check_duplication=False
        )
    theirs = tracemalloc.get_traced_memory()[0] / len(sigs)
    del lsh
    tracemalloc.stop()
    tracemalloc.start()
    index = NearDuplicateIndex(THRESHOLD, NUM_PERM)
    for sig, keys in zip(sigs, index.band_keys(sigs).tolist()):
        index.add(sig, keys)
    mine = tracemalloc.get_traced_memory()[0] / len(sigs)
    tracemalloc.stop()
    return theirs, mine


def run(name: str, texts: list[str], extra_truth: list[tuple[int, int]] = ()) -> None:
    print(f"\n== {name}: {len(texts):,} functions")
    sets = ShingleSets(texts, NGRAM)
    truth = similar_pairs(sets, 0.7)
    known = {(i, j) for i, j, _ in truth}
    for i, j in extra_truth:  # planted pairs the reference LSH might have missed
        i, j = min(i, j), max(i, j)
        if (i, j) not in known and (s := sets.jaccard(i, j)) >= 0.7:
            truth.append((i, j, s))
    print(f"pairs with exact Jaccard >= 0.7: {len(truth):,}")
    mine, sig_s, index_s = ours(texts)
    minhashes, base_sig_s = baseline_signatures(texts)
    theirs, base_index_s = baseline_index(minhashes)
    rows = [
        ("baseline (datasketch)", theirs, base_sig_s, base_index_s),
        ("ours (dedup stage)", mine, sig_s, index_s),
    ]
    print(
        f"{'method':<22} {'sig fn/s':>9} {'speedup':>8} {'index us/fn':>12} {'dropped':>8} "
        f"{'recall':>7} {'same-cl':>8} {'merged':>7} {'min J':>6} {'J<0.3':>6}"
    )
    for label, merged_into, s_sig, s_index in rows:
        q = evaluate(sets, merged_into, truth)
        print(
            f"{label:<22} {len(texts) / s_sig:>9,.0f} {base_sig_s / s_sig:>7.1f}x "
            f"{s_index / len(texts) * 1e6:>12.1f} {q['dropped']:>8,} {q['recall']:>7.3f} "
            f"{q['recall_same_cluster']:>8.3f} {q['merged_pairs']:>7,} {q['merged_min_jaccard']:>6.2f} "
            f"{q['merged_below_0.3']:>6}"
        )
    same = sum(a == b for a, b in zip(theirs, mine))
    print(f"same decision for {same / len(texts):.1%} of functions (the hash functions differ)")


# The smallest setting, a run of seconds that the test suite makes (tests/test_benchmarks.py;
# {tmp}: a fresh folder, {port}: a free port, {root}: the repository): a change that breaks the
# script fails CI.
SMALLEST = [
    "--source", "python:stdlib", "--limit", "300", "--planted-base", "100",
    "--memory-sample", "100",
]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="python:all")
    parser.add_argument(
        "--limit", type=int, default=None, help="at most this many corpus functions"
    )
    parser.add_argument(
        "--planted-base", type=int, default=4000, help="functions in the planted corpus"
    )
    parser.add_argument("--memory-sample", type=int, default=10000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    texts = corpus_functions(args.source, args.limit)
    print(f"corpus {args.source}: {len(texts):,} distinct documented functions")
    # A fixed pseudo-random subset (by content hash, so it does not depend on file order).
    subset = sorted(
        texts, key=lambda t: hashlib.sha256(t.encode("utf-8", "surrogatepass")).digest()
    )
    planted, origin = plant_near_duplicates(
        subset[: args.planted_base], bases=args.planted_base // 4, variants=3, max_edits=8, seed=0
    )
    run("planted near-duplicates", planted, [(i, o) for i, o in enumerate(origin) if o >= 0])
    run(f"{args.source} as it is", texts)
    print(
        f"\ndatasketch MinHash.bulk (batch API, for reference): {bulk_signatures_rate(texts):,.0f} fn/s"
    )
    theirs, mine = index_memory(
        random.Random(0).sample(texts, min(args.memory_sample, len(texts))), args.memory_sample
    )
    print(
        f"index memory per kept function: datasketch MinHashLSH {theirs / 1024:.1f} KB, ours {mine / 1024:.1f} KB"
    )


if __name__ == "__main__":
    main()
