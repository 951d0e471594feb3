"""`dedup` side by side with text-dedup itself, the tool the published pipeline deduplicated with.

    pip install --no-deps text-dedup click-option-group   # text-dedup 0.4.0; its other deps
    python benchmarks/bench_dedup_reference.py [--source stdlib] [--limit 5000]

The corpus: the documented functions `extract` finds in this Python's standard library (or
`--source all`: with site-packages), exact duplicates removed, in a fixed order. text-dedup runs
as the reference's README runs it (`python -m text_dedup.minhash ... --threshold 0.5`, its
defaults otherwise: 250 permutations, 5-gram shingles, SHA-1, its fixed seed 42) on the corpus
saved as a dataset; our `dedup` stage runs on the same rows in both modes with the same
settings. Printed: functions removed by each, and the Jaccard similarity of each removed set
with text-dedup's (target for `mode: reference`: at least 0.95), and for verified mode what the
difference is made of.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from builder.pipeline.folder_input import python_corpus
from builder.pipeline.rows import Drop
from builder.stages.dedup.stage import DedupParams, DedupStage
from builder.stages.extract import extract_functions

THRESHOLD, NUM_PERM, SEED = 0.5, 250, 42


def corpus(source: str, limit: int) -> list[dict]:
    rows, seen = [], set()
    for _, path, _ in python_corpus(source).files:
        try:
            functions = extract_functions(path.read_text(encoding="utf-8"))
        except (SyntaxError, ValueError, UnicodeDecodeError):
            continue
        for f in functions:
            if f["content_hash"] not in seen and len(rows) < limit:
                seen.add(f["content_hash"])
                rows.append({"id": f"f{len(rows):05d}", "name": f["name"], "function": f["function"]})
    return rows


def text_dedup_removed(rows: list[dict], folder: Path) -> set[str]:
    from datasets import Dataset, load_from_disk

    Dataset.from_list(rows).save_to_disk(folder / "input")
    command = [
        sys.executable, "-m", "text_dedup.minhash", "--path", str(folder / "input"), "--local",
        "--output", str(folder / "output"), "--column", "function",
        "--threshold", str(THRESHOLD), "--num_perm", str(NUM_PERM), "--cache_dir",
        str(folder / "cache"),
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, text=True)
    kept = {row["id"] for row in load_from_disk(str(folder / "output"))}
    return {row["id"] for row in rows} - kept


def ours_removed(rows: list[dict], mode: str) -> tuple[set[str], list[Drop]]:
    stage = DedupStage(DedupParams(threshold=THRESHOLD, num_perm=NUM_PERM, seed=SEED, mode=mode))
    processed = []
    for start in range(0, len(rows), stage.chunk_size):
        processed += stage.process([dict(r) for r in rows[start : start + stage.chunk_size]]).kept
    drops = [out for out in stage.finalize(iter(processed)) if isinstance(out, Drop)]
    return {d.row["id"] for d in drops}, drops


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


# The smallest setting, a run of seconds that the test suite makes (tests/test_benchmarks.py;
# {tmp}: a fresh folder, {port}: a free port, {root}: the repository): a change that breaks the
# script fails CI.
SMALLEST = ["--source", "stdlib", "--limit", "100"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="stdlib", help="stdlib or all (python_corpus)")
    parser.add_argument("--limit", type=int, default=5000)
    args = parser.parse_args()
    if importlib.util.find_spec("text_dedup") is None:
        raise SystemExit("needs text-dedup itself: pip install --no-deps text-dedup==0.4.0 "
                         "click-option-group")  # fmt: skip
    logging.basicConfig(level=logging.WARNING)
    rows = corpus(args.source, args.limit)
    print(f"corpus: {len(rows):,} distinct documented functions ({args.source})")
    with tempfile.TemporaryDirectory(prefix="bench-dedup-ref-") as tmp:
        started = time.monotonic()
        theirs = text_dedup_removed(rows, Path(tmp))
        print(f"text-dedup: {len(theirs):,} removed ({time.monotonic() - started:.1f} s)")
    for mode in ("reference", "verified"):
        started = time.monotonic()
        mine, drops = ours_removed(rows, mode)
        elapsed = time.monotonic() - started
        print(
            f"dedup mode={mode}: {len(mine):,} removed ({elapsed:.1f} s); Jaccard with "
            f"text-dedup's removed set {jaccard(mine, theirs):.4f}; only ours {len(mine - theirs)}, "
            f"only text-dedup {len(theirs - mine)}"
        )
        low = sorted(d.row["jaccard_estimate"] for d in drops)
        if low:
            below = sum(v < THRESHOLD for v in low)
            print(
                f"  removed with an estimated Jaccard to the kept function below {THRESHOLD}: "
                f"{below:,} (lowest {low[0]:.2f})"
            )


if __name__ == "__main__":
    main()
