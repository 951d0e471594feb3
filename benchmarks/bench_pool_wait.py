"""The sandbox pool's own cost of handing back verdicts, with no program run at all.

    python benchmarks/bench_pool_wait.py [--sizes 2000 20000]

`run` and `run_iter` wait for their programs' futures through `builder.sandbox._pool.completed`.
Here a thread finishes N bare futures one by one, yielding the CPU between them (the worst case
for the waiting side: one wake per verdict), while the main thread takes them from `completed`.
Printed: the time for all N and the time per future. Target: the cost per future does not grow
with N (a wait that rescans what is pending is O(N) per future: 20,000 took 101.9 s that way,
against 1.3 s for the current code, on the 2-core development machine).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from concurrent.futures import Future
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from builder.sandbox._pool import completed


def time_completed(count: int) -> float:
    futures = [Future() for _ in range(count)]

    def finish_one_by_one() -> None:
        for future in futures:
            future.set_result(None)
            time.sleep(0)  # let the waiting thread wake for each one

    finisher = threading.Thread(target=finish_one_by_one)
    start = time.perf_counter()
    finisher.start()
    taken = sum(1 for _ in completed(futures))
    finisher.join()
    elapsed = time.perf_counter() - start
    assert taken == count, (taken, count)
    return elapsed


# The smallest setting, a run of seconds that the test suite makes (tests/test_benchmarks.py;
# {tmp}: a fresh folder, {port}: a free port, {root}: the repository): a change that breaks the
# script fails CI.
SMALLEST = ["--sizes", "200"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    args = parser.parse_args()
    per_future = []
    for count in args.sizes:
        elapsed = time_completed(count)
        per_future.append(elapsed / count)
        print(f"{count:7d} futures: {elapsed:6.2f} s, {elapsed / count * 1e6:6.1f} µs each")
    growth = per_future[-1] / per_future[0]
    verdict = "met" if growth < 3 else "NOT met"
    print(f"cost per future, largest vs smallest size: {growth:.2f}x (target < 3x: {verdict})")


if __name__ == "__main__":
    main()
