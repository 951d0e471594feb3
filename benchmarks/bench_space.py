"""The Space's Data tab on a stage of 1,000,000 rows: time to the first page, to another page,
to a search result, and the server's peak memory.

    python benchmarks/bench_space.py [--rows 1000000] [--keep DIR]

Generates a stage shaped like `extract`'s output (id, function of ~300 characters, name,
docstring, path, repo, license, source, content_hash) in a local store, published through the
one publisher (shards of 100,000 rows, row groups of 1,000), then starts `builder space serve`
on it in its own process and asks it through `gradio_client`, as the page does:

- open the stage (`/stage`: its revisions, lineage, card, columns and first page);
- a page in the middle (`/rows`, page 25,000);
- search: a word in every 1,000th row (the first page of matches), a word only in row 999,999
  and a word in no row (scans of the whole stage: a call stops at its time budget and says how
  far it got, and is asked again from there, as the page's "more" button does);
- the server's resident memory after start, and its peak (VmHWM) at the end.

Goals: the stage opens in about a second, and the server never holds the stage in memory.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parents[1]
WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "value",
    "index",
    "table",
    "parse",
    "merge",
    "split",
    "count",
    "total",
    "score",
]


def generate(store_dir: Path, rows: int) -> None:
    from builder.pipeline.dataset_card import render_card
    from builder.pipeline.publish import publish
    from builder.pipeline.shards import ShardWriter
    from builder.store import open_store

    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        train = ShardWriter(folder, "train")
        for i in tqdm(range(rows), desc="generate", unit="row", mininterval=1.0):
            words = " ".join(rng.choice(WORDS) for _ in range(8))
            marker = " needle_common" if i % 1000 == 0 else ""
            marker += " needle_last" if i == rows - 1 else ""
            function = f'def f_{i}(x, y):\n    """{words}{marker}."""\n' + "    x = x + y\n" * 20
            train.write(
                {
                    "id": f"{i:016x}",
                    "function": function,
                    "name": f"f_{i}",
                    "docstring": words + marker,
                    "path": f"pkg/mod_{i // 100}.py",
                    "repo": f"owner/repo_{i % 997}",
                    "license": "mit",
                    "source": "bench",
                    "content_hash": f"{i:064x}",
                }
            )
        files = train.finish()
        splits = {
            "train": {"rows": rows, "files": [str(f.relative_to(folder)) for f in files]},
            "rejected": {"rows": 0, "files": []},
        }
        manifest = {
            "format": 1,
            "kind": "dataset",
            "stage": "extract",
            "repo": "local/bench-extract",
            "stage_version": 1,
            "description": "generated for bench_space.py",
            "fingerprint": "bench",
            "settings": {},
            "input": {"kind": "dir", "path": "/bench", "revision": "bench"},
            "params": {},
            "recipe": {"name": "bench", "file": "bench", "fingerprint": "bench"},
            "versions": {},
            "created_at": "2026-11-30T00:00:00Z",
            "timings": {"run_s": 0},
            "splits": splits,
            "columns": {"train": ["id", "function"]},
            "rows_in": rows,
            "rows_out": rows,
            "drops": {},
            "stats": {},
        }
        publish(
            open_store(f"local:{store_dir}"),
            "local/bench-extract",
            folder,
            manifest,
            render_card(manifest),
            "extract: generated",
        )


def memory_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def serve(store_dir: Path, port: int) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "builder",
        "space",
        "serve",
        str(ROOT / "hub_configs/tiny.yaml"),
        "--port",
        str(port),
        "--set",
        "name=bench",
        "--set",
        f"hub.store=local:{store_dir}",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def timed(label: str, call):
    started = time.perf_counter()
    result = call()
    print(f"{label:<52} {time.perf_counter() - started:7.3f} s")
    return result


def search(client, word: str) -> None:
    """The first page of matches: asking again (the page's “more”) while a scan stopped at its
    time budget with no match yet."""
    start, calls = 0, 0
    while True:
        rows, info, start, _ = client.predict(
            "extract", "", "train", word, "all text columns", start, api_name="/search"
        )
        calls += 1
        if rows["data"] or start is None:
            print(f"    {calls} call(s); {info}")
            return


# The smallest setting, a run of seconds that the test suite makes (tests/test_benchmarks.py;
# {tmp}: a fresh folder, {port}: a free port, {root}: the repository): a change that breaks the
# script fails CI.
SMALLEST = ["--rows", "300", "--port", "{port}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--port", type=int, default=7899)
    parser.add_argument("--keep", help="generate the store into DIR once and reuse it")
    args = parser.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-space-"))
    store_dir = work / "store"
    if not (store_dir / "datasets/local/bench-extract").is_dir():
        timed(f"generate and publish {args.rows:,} rows", lambda: generate(store_dir, args.rows))
    server = serve(store_dir, args.port)
    try:
        from gradio_client import Client

        deadline = time.monotonic() + 120
        while True:
            try:
                client = Client(f"http://127.0.0.1:{args.port}/", verbose=False)
                break
            except Exception:  # noqa: BLE001 - not up yet
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.5)
        print(f"server resident after start: {memory_kb(server.pid, 'VmRSS') / 1024:.0f} MiB")
        view = timed(
            "open the stage (/stage: lineage, card, page 1)",
            lambda: client.predict("extract", api_name="/stage"),
        )
        print("   ", view[7])
        page = timed(
            "page 25,000 (/rows)",
            lambda: client.predict("extract", "", "train", 25000, api_name="/rows"),
        )
        print("   ", page[1])
        for label, word in (
            ("search: word in every 1,000th row", "needle_common"),
            ("search: word only in the last row (with “more”)", "needle_last"),
            ("search: word in no row (with “more”)", "needle_none"),
        ):
            timed(label, lambda w=word: search(client, w))
        print(f"server peak resident (VmHWM): {memory_kb(server.pid, 'VmHWM') / 1024:.0f} MiB")
        size = sum(p.stat().st_size for p in (store_dir / "datasets").rglob("objects/*"))
        print(f"stage on disk: {size / 2**20:.0f} MiB")
    finally:
        server.terminate()
        server.wait(timeout=30)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
