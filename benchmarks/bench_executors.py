"""The Ray executor against the local one on the same stages: per-chunk overhead, and how
throughput scales from one node to two on this machine.

    python benchmarks/bench_executors.py [--files 400] [--programs 240] [--rounds 3]

Starts a Ray cluster of two nodes here (one CPU each, as the tests do: `tests/ray_cluster.py`)
and runs `extract`, `filter` (curation) and `execute` (the local sandbox on HumanEval+ canonical
programs) through `builder run`, as separate drivers, in four ways, taking turns every round so
that a change in the machine's load hits each alike:

- local, 1 worker: the chunks run in the driver's own process (no transport at all);
- ray, 1 worker: one actor on one node (chunk descriptors out, proofs in);
- ray, 2 workers: one actor on each node;
- local, 2 workers: two worker processes on this machine, for reference.

Each line gives the median of the rounds' `timings.process_s` (the stage's chunks, from the first
hand-out to the last proof; `extract` also pays for starting the actors, which later stages
reuse). Overhead per chunk = (ray 1 worker - local 1 worker) / chunks.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pyarrow as pa
import pyarrow.parquet as pq

from builder.store import open_store
from tests.ray_cluster import ray_cluster

TINY = REPO / "hub_configs" / "tiny.yaml"
HUMANEVAL = REPO / "builder/data/benchmarks/HumanEvalPlus-v0.1.9.jsonl.gz"
STAGES = ("extract", "filter", "execute")
WAYS = {
    "local, 1 worker": ("local", 1),
    "ray, 1 worker": ("ray", 1),
    "ray, 2 workers": ("ray", 2),
    "local, 2 workers": ("local", 2),
}
CHUNKS = {"extract": 20, "filter": 5, "execute": 8}  # rows per chunk: filter's are tiny, so
# that its time is mostly per-chunk cost (load, hand-out, checkpoint)


def make_corpus(folder: Path, files: int) -> Path:
    """The first `files` modules of this Python's standard library, copied."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    sources = sorted(p for p in stdlib.glob("*.py") if p.is_file())[:files]
    folder.mkdir(parents=True)
    for path in sources:
        shutil.copy(path, folder / path.name)
    return folder


def responses(programs: int) -> list[dict]:
    with gzip.open(HUMANEVAL, "rt", encoding="utf-8") as handle:
        tasks = [json.loads(line) for line in handle]
    rows = []
    for index in range(programs):
        task = tasks[index % len(tasks)]
        code = f"{task['prompt']}{task['canonical_solution']}\n\n{task['test']}\n"
        code += f"\ncheck({task['entry_point']})\n# copy {index}\n"  # each program its own
        rows.append({"response_id": f"r{index}", "response": f"```python\n{code}```\n"})
    return rows


def run_once(way: str, cluster, corpus: Path, rows: list[dict], folder: Path) -> dict:
    backend, workers = WAYS[way]
    store = f"local:{folder / 'store'}"
    table = folder / "judge.parquet"
    pq.write_table(pa.Table.from_pylist(rows), table)
    repos = open_store(store)
    repos.create_repo("bench/run-judge", private=True)  # `judge` is not run: execute reads it
    repos.commit("bench/run-judge", {"data/train-00000-of-00001.parquet": table}, "programs")
    settings = [
        "name=run", f"hub.store={store}", "hub.namespace=bench", f"work_dir={folder / 'work'}",
        f"stages.extract.source={corpus}", "stages.execute.input=judge",
        "stages.execute.workers=1", f"executor.backend={backend}",
    ]  # fmt: skip
    for stage in STAGES:
        settings += [
            f"stages.{stage}.chunk_size={CHUNKS[stage]}",
            f"executor.resources.{stage}.workers={workers}",
        ]
    if backend == "ray":
        settings.append(f"executor.address={cluster.address}")
    command = [sys.executable, "-m", "builder", "run", str(TINY), "--only", ",".join(STAGES)]
    command += [arg for s in settings for arg in ("--set", s)]
    done = subprocess.run(
        command, cwd=REPO, env=cluster.env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{way} failed:\n{done.stderr[-3000:]}")
    results = {}
    for stage in STAGES:
        manifest = json.loads(repos.read_text(f"bench/run-{stage}", "main", "manifest.json"))
        chunks = -(-manifest["rows_in"] // CHUNKS[stage])
        results[stage] = (manifest["timings"]["process_s"], chunks, manifest["rows_in"])
    return results


# The smallest setting, a run of seconds that the test suite makes (tests/test_benchmarks.py;
# {tmp}: a fresh folder, {port}: a free port, {root}: the repository): a change that breaks the
# script fails CI.
SMALLEST = ["--files", "8", "--programs", "8", "--rounds", "1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=400, help="stdlib modules to extract")
    parser.add_argument("--programs", type=int, default=240, help="programs to execute")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    times: dict[str, dict[str, list[float]]] = {w: {s: [] for s in STAGES} for w in WAYS}
    sizes: dict[str, tuple[int, int]] = {}
    with tempfile.TemporaryDirectory() as tmp, ray_cluster(nodes=2) as cluster:
        corpus = make_corpus(Path(tmp) / "corpus", args.files)
        rows = responses(args.programs)
        for round_ in range(args.rounds):
            for number, way in enumerate(WAYS):
                folder = Path(tmp) / f"r{round_}-{number}"
                folder.mkdir()
                for stage, (seconds, chunks, rows_in) in run_once(
                    way, cluster, corpus, rows, folder
                ).items():
                    times[way][stage].append(seconds)
                    sizes[stage] = (chunks, rows_in)
                shutil.rmtree(folder)
            print(f"round {round_ + 1} of {args.rounds} done", file=sys.stderr)
    print(f"{os.cpu_count()} CPUs here; median of {args.rounds} rounds of timings.process_s")
    print(f"{'stage':<8} {'chunks':>6} {'rows':>6}  " + "  ".join(f"{w:>16}" for w in WAYS))
    for stage in STAGES:
        chunks, rows_in = sizes[stage]
        medians = {w: statistics.median(times[w][stage]) for w in WAYS}
        cells = "  ".join(f"{medians[w]:>15.2f}s" for w in WAYS)
        print(f"{stage:<8} {chunks:>6} {rows_in:>6}  {cells}")
        overhead = (medians["ray, 1 worker"] - medians["local, 1 worker"]) / chunks * 1000
        scaling = medians["ray, 1 worker"] / medians["ray, 2 workers"]
        local = medians["local, 1 worker"] / medians["local, 2 workers"]
        print(
            f"{'':<8} ray overhead {overhead:+.1f} ms/chunk; 1 -> 2 nodes {scaling:.2f}x "
            f"(local 1 -> 2 processes {local:.2f}x)"
        )


if __name__ == "__main__":
    main()
