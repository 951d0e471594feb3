"""What verified reads and durable commits cost in the local store, on one large file.

    python benchmarks/bench_store.py [--mib 1024]

Commits one file of random bytes to a temporary local store, then reads it back: the first
fetch in a process hashes the object (SHA-256), later ones do not. Prints the commit time (copy,
hash, fsync), the first and a second fetch, and a plain read of the same file for comparison
(from the page cache, as the verification's own read is).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from builder.store import open_store

# The smallest setting, a run of seconds that the test suite makes (tests/test_benchmarks.py;
# {tmp}: a fresh folder, {port}: a free port, {root}: the repository): a change that breaks the
# script fails CI.
SMALLEST = ["--mib", "1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024, help="size of the file, MiB")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        source = Path(tmp) / "big.bin"
        with open(source, "wb") as handle:
            handle.writelines(os.urandom(1 << 20) for _ in range(args.mib))
        store = open_store(f"local:{tmp}/store")
        store.create_repo("bench/big", private=True)
        started = time.perf_counter()
        store.commit("bench/big", {"big.bin": source}, "big", parent=store.resolve("bench/big"))
        commit_s = time.perf_counter() - started

        timings = {}
        for name in ("first fetch (verifies)", "second fetch (verified)"):
            started = time.perf_counter()
            path = store.fetch("bench/big", "main", ["big.bin"])["big.bin"]
            timings[name] = time.perf_counter() - started
        started = time.perf_counter()
        with open(path, "rb") as handle:
            while handle.read(1 << 20):
                pass
        timings["plain read, for comparison"] = time.perf_counter() - started

    mib = args.mib
    print(f"file: {mib} MiB")
    print(f"{'commit (hash, copy, fsync)':<30} {commit_s:7.2f} s {mib / commit_s:8.0f} MiB/s")
    for name, seconds in timings.items():
        rate = f"{mib / seconds:8.0f} MiB/s" if seconds > 1e-3 else "       -"
        print(f"{name:<30} {seconds:7.3f} s {rate}")


if __name__ == "__main__":
    main()
