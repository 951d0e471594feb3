"""`dedup`: near-duplicate functions removed with MinHash and LSH, one kept per cluster.

`process` computes each function's MinHash signature (in parallel, chunk by chunk; see
`builder.stages.dedup.sketch` for the shingling: word-token n-grams) and carries it to
`finalize` in a `minhash` column. `finalize` walks the functions in input order and drops a
function whose estimated Jaccard similarity with an already kept function is at least
`threshold` (`builder.stages.dedup.index`): the first function of a cluster in input order is its
representative. Dropped rows name it (`duplicate_of`, and `cluster_id`, which kept rows have
too: both configs can be joined on it), with the similarity in `jaccard_estimate`. The
signature column is not published (1 KB a row, and meaningless without the parameters).

The result depends only on the input's order, not on chunk size or process count.

`mode: reference` clusters as the published pipeline's tool (text-dedup) does instead: its
shingles and hashing, every text sharing an LSH bucket united with it without checking their
similarity, transitively, one text kept per component (`builder.stages.dedup.reference`; the
threshold then only sets the bands, and clustered texts can be far less similar than it).
"""

from __future__ import annotations

import itertools
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from builder.config.fields import bounded, runtime_only
from builder.errors import RecipeError
from builder.pipeline.rows import ChunkResult, Drop, Row, RowStage, text_of
from builder.pipeline.step import StepContext, StepParams
from builder.stages.dedup import NearDuplicateIndex, reference, signatures
from builder.stages.dedup.index import lsh_params
from builder.stages.dedup.sketch import MAX_NGRAM

SIGNATURE = "minhash"  # the column carrying signatures from `process` to `finalize`
_BATCH = 1024  # rows whose band keys `finalize` computes at once


@dataclass
class DedupParams(StepParams):
    threshold: float = 0.5  # estimated Jaccard similarity at or above which rows are duplicates
    num_perm: int = 256  # MinHash permutations
    ngram: int = 5  # tokens per shingle
    seed: int = bounded(1, ge=0)  # of the permutations (datasketch's default; text-dedup's: 42)
    # verified: a duplicate is at least `threshold` similar to the kept text it names;
    # reference: text-dedup's clustering (bucket union-find, unverified), as the published run.
    mode: Literal["verified", "reference"] = "verified"
    num_proc: int = runtime_only(0, ge=0)  # 0: every core

    def __post_init__(self):
        if not 0.0 < self.threshold <= 1.0:
            raise RecipeError(f"stages.dedup.threshold must be in (0, 1], got {self.threshold}")
        if not 1 <= self.ngram <= MAX_NGRAM:
            raise RecipeError(
                f"stages.dedup.ngram must be between 1 and {MAX_NGRAM}, got {self.ngram}"
            )
        if self.num_perm < 16:
            raise RecipeError(f"stages.dedup.num_perm must be at least 16, got {self.num_perm}")


class DedupStage(RowStage):
    name = "dedup"
    params_class = DedupParams
    reads = ("id", "function")
    adds = ("cluster_id",)
    chunk_size = 2000
    description = "Near-duplicate functions removed (MinHash + LSH), one kept per cluster."

    params: DedupParams

    def __init__(self, params: DedupParams, context: StepContext | None = None):
        super().__init__(params, context)
        self._summary: dict = {}

    def num_proc(self) -> int:
        return self.params.num_proc or len(os.sched_getaffinity(0))

    def process(self, rows: list[Row]) -> ChunkResult:
        p = self.params
        texts = [text_of(row, "function") for row in rows]
        if p.mode == "reference":
            values = reference.signatures(texts, p.num_perm, p.ngram, p.seed)
        else:
            values = signatures(texts, p.num_perm, p.ngram, p.seed)
        return ChunkResult(
            kept=[{**row, SIGNATURE: sig.tobytes()} for row, sig in zip(rows, values)]
        )

    def finalize(self, rows: Iterable[Row]) -> Iterator[Row | Drop]:
        import numpy as np

        if self.params.mode == "reference":
            yield from self._finalize_reference(rows)
            return

        index = NearDuplicateIndex(self.params.threshold, self.params.num_perm)
        kept_ids: list[str] = []
        kept_names: list[str] = []
        sizes: Counter = Counter()
        rows = iter(rows)
        while batch := list(itertools.islice(rows, _BATCH)):
            sigs = np.stack([np.frombuffer(row.pop(SIGNATURE), dtype=np.uint32) for row in batch])
            all_keys = index.band_keys(sigs).tolist()
            for row, sig, keys in zip(batch, sigs, all_keys):
                found = index.match(sig, keys)
                if found is None:
                    index.add(sig, keys)
                    kept_ids.append(row["id"])
                    kept_names.append(row.get("name") or "")
                    yield {**row, "cluster_id": row["id"]}
                    continue
                kept, similarity = found
                sizes[kept] += 1
                yield _duplicate(
                    row, kept_ids[kept], kept_names[kept], similarity, "near-duplicate of"
                )
        self._summary = _cluster_summary(sizes, lambda kept: (kept_ids[kept], kept_names[kept]))

    def _finalize_reference(self, rows: Iterable[Row]) -> Iterator[Row | Drop]:
        """Every row first (the clustering needs all band keys), then each row kept or dropped
        as a duplicate of its component's kept row."""
        import numpy as np

        bands, band_rows = lsh_params(self.params.threshold, self.params.num_perm)
        held, sigs = [], []
        for row in rows:
            sigs.append(np.frombuffer(row.pop(SIGNATURE), dtype=np.uint32))
            held.append(row)
        empty = np.uint32(0xFFFFFFFF)
        keys = [
            None if (sig == empty).all() else reference.band_keys(sig, bands, band_rows)
            for sig in sigs
        ]
        roots = reference.cluster(keys)
        sizes = Counter(root for i, root in enumerate(roots) if root != i)
        for index, (row, root) in enumerate(zip(held, roots)):
            kept = held[root]
            if root == index:
                yield {**row, "cluster_id": row["id"]}
                continue
            similarity = float((sigs[index] == sigs[root]).mean())
            name = kept.get("name") or ""
            yield _duplicate(row, kept["id"], name, similarity, "in the cluster of")
        self._summary = _cluster_summary(
            sizes, lambda root: (held[root]["id"], held[root].get("name") or "")
        )

    def card_notes(self) -> str:
        p = self.params
        bands, rows = lsh_params(p.threshold, p.num_perm)
        if p.mode == "reference":
            return self._reference_notes(bands, rows)
        lines = [
            (
                f"Near-duplicates are found with MinHash ({p.num_perm} permutations, seed {p.seed}, "
                f"datasketch's `affine32` scheme) over shingles of {p.ngram} consecutive word tokens "
                "(runs of `\\w` characters: identifiers, keywords, numbers; punctuation and "
                "whitespace only separate tokens) of the function text, and LSH with "
                f"{bands} bands of {rows} rows (datasketch's choice for threshold {p.threshold}). "
                "Functions are taken in input order; one whose estimated Jaccard similarity with a "
                f"function already kept is at least {p.threshold} is dropped as a duplicate of the "
                "most similar one (`duplicate_of`, `cluster_id`, `jaccard_estimate`). Kept rows have "
                "`cluster_id` = their own `id`, so a cluster is its kept row plus the rejected rows "
                "with the same `cluster_id`."
            ),
        ]
        return "\n".join(lines + self._summary_lines())

    def _reference_notes(self, bands: int, rows: int) -> str:
        p = self.params
        lines = [
            (
                "Near-duplicates clustered as the published StarCoder2-Instruct pipeline's tool "
                f"(text-dedup's MinHash) does (`mode: reference`): {p.num_perm} permutations, seed "
                f"{p.seed}, shingles of {p.ngram} tokens of the lowercased text split on every "
                "non-word character, SHA-1 hashing, and LSH with "
                f"{bands} bands of {rows} rows (for threshold {p.threshold}). Every function that "
                "shares a bucket with another is put in its cluster **without checking their "
                "similarity**, and clusters join transitively, so the threshold sets the bands "
                "only: a cluster can hold functions far less similar than it "
                "(`jaccard_estimate` says how similar each dropped one is to the kept one). One "
                "function is kept per cluster (text-dedup's union-find root); functions of fewer "
                f"than {reference.MIN_TOKENS} tokens are not clustered. One difference stays: "
                "the published run deduplicated every extracted function before any filter, "
                "this step clusters the functions that passed them, so clusters and their "
                "survivors can differ (on the seed benchmark's corpus, 4 of the published 620 "
                "seeds went and 6 others came, `benchmarks/bench_seeds_reference.py`)."
            ),
        ]
        return "\n".join(lines + self._summary_lines())

    def _summary_lines(self) -> list[str]:
        lines: list[str] = []
        summary = self._summary
        if summary.get("largest"):
            rep_id, rep_name, size = summary["largest"]
            lines += [
                "",
                (
                    f"Clusters with near-duplicates: {summary['clusters']:,}; the largest has "
                    f"{size:,} functions (kept: `{rep_id}`, `{rep_name}`)."
                ),
            ]
        return lines


def _duplicate(row: Row, kept_id: str, kept_name: str, similarity: float, relation: str) -> Drop:
    """A dropped row naming the kept row of its cluster (both modes)."""
    dropped = {
        **row,
        "cluster_id": kept_id,
        "duplicate_of": kept_id,
        "jaccard_estimate": round(similarity, 4),
    }
    detail = f"{relation} {kept_id} ({kept_name}), estimated Jaccard {similarity:.2f}"
    return Drop(dropped, "near_duplicate", detail)


def _cluster_summary(sizes: Counter, kept_row) -> dict:
    """How many clusters have duplicates, and the largest (its kept id and name, its size);
    `sizes`: duplicates per cluster key, `kept_row(key)`: (id, name) of the cluster's kept row."""
    summary: dict = {"clusters": len(sizes)}
    if sizes:
        key, size = max(sizes.items(), key=lambda kv: (kv[1], -kv[0]))
        summary["largest"] = (*kept_row(key), size + 1)
    return summary
