"""MinHash near-duplicate detection: vectorised signatures (`sketch.py`), bit-identical to
datasketch's, and a greedy LSH index over them (`index.py`)."""

from builder.stages.dedup.index import NearDuplicateIndex, lsh_params
from builder.stages.dedup.sketch import shingle_hash, shingles, signatures, tokens

__all__ = ["NearDuplicateIndex", "lsh_params", "shingle_hash", "shingles", "signatures", "tokens"]
