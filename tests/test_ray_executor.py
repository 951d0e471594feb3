"""Row stages on a Ray cluster of two nodes on this machine: a head and a worker started by the
test with `ray start`, one CPU each, with token authentication as Ray 2.60 has it by default (a
token file every node and driver is given through RAY_AUTH_TOKEN_PATH).

The same rows as the local executor from extract to dedup, a generation stage on the tiny model
and execute; chunks that fail for good are named, finished ones reused; the worker node killed
(its processes, by PID) in the middle of a generation stage, which then finishes on the head
with no row lost or duplicated and no completion generated twice. Every Ray process the tests
start is stopped by PID at the end, and checked gone.
"""

import importlib.util
import json
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from builder.engines.cache import _SCHEMA
from tests.helpers import ROOT, TINY, export_rows, write_corpus
from tests.ray_cluster import processes, ray_cluster, stop
from tests.test_generation_stages import INSTRUCTIONS, manifest, publish_rows

pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("ray") is None, reason="the ray extra is not installed"
    ),
    pytest.mark.slow,  # a two-node cluster starts for each module
]
CURATION = ("extract", "filter", "imports", "typecheck", "decontaminate", "dedup")


@pytest.fixture(scope="module")
def cluster():
    with ray_cluster(nodes=2) as cluster:
        yield cluster


def builder(env: dict, log: Path, *args) -> subprocess.Popen:
    """`builder run` in its own process (a Ray driver), its log in `log`."""
    return subprocess.Popen(
        [sys.executable, "-m", "builder", "run", str(TINY), *map(str, args)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"),
    )  # fmt: skip


def run(env: dict, log: Path, *args) -> tuple[int, str]:
    process = builder(env, log, *args)
    process.wait(timeout=900)
    return process.returncode, log.read_text()


def recipe(tmp_path: Path, tiny_model, name: str) -> list[str]:
    settings = {
        "name": name, "hub.store": f"local:{tmp_path / 'store'}", "hub.namespace": "tester",
        "work_dir": tmp_path / "work", "model": tiny_model, "engine.cpu_threads": 1,
        "stop_when_empty": False,  # a random model's responses keep nothing: go on to execute
        "stages.responses.input": "instructions", "stages.responses.n": 2,
        "stages.responses.num_fewshots": 0, "stages.responses.max_tokens": 16,
        "stages.responses.chunk_size": 2,
        # `judge` is not run here: its repository holds hand-written responses with code, so
        # that execute runs real programs in the sandbox.
        "stages.execute.input": "judge", "stages.execute.timeout_s": 2,
        "stages.execute.chunk_size": 2,
        **{f"stages.{stage}.chunk_size": 1 for stage in CURATION},
        "stages.dedup.chunk_size": 10,  # one chunk: the workers it leaves idle are kept too
    }  # fmt: skip
    return [arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")]


PROGRAMS = {
    "pass": "def add(a, b):\n    return a + b\n\nassert add(1, 2) == 3\n",
    "fail": "def add(a, b):\n    return a - b\n\nassert add(1, 2) == 3\n",
    "error": "def broken(:\n    pass\n",
    "timeout": "while True:\n    pass\n",
}


def untimed(rows: list[dict]) -> list[dict]:
    """Rows without the time a program took to run, which no two runs share."""
    return [{k: v for k, v in row.items() if k != "exec_duration_s"} for row in rows]


def outcome(folder: Path, name: str, stage: str) -> tuple:
    """What a stage published: its kept rows, its dropped rows and its counts."""
    store, repo = f"local:{folder / 'store'}", f"tester/{name}-{stage}"
    counts = {k: manifest(folder, repo)[k] for k in ("rows_in", "drops", "stats")}
    kept = untimed(export_rows(store, repo, folder / stage))
    return kept, untimed(export_rows(store, repo, folder / stage, "rejected")), counts


def test_two_nodes_publish_what_the_local_executor_publishes(cluster, tiny_model, tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    stages = ",".join([*CURATION, "responses", "execute"])
    address = cluster.address
    published = {}
    for executor in ("ray", "local"):
        folder = tmp_path / executor
        folder.mkdir()
        publish_rows(folder, f"tester/{executor}-instructions", [
            {"instruction_id": f"i{k}", "instruction": text}
            for k, text in enumerate(INSTRUCTIONS[:4])
        ])  # fmt: skip
        publish_rows(folder, f"tester/{executor}-judge", [
            {"response_id": name, "response": f"Here:\n```python\n{code}```\n"}
            for name, code in PROGRAMS.items()
        ] + [{"response_id": "prose", "response": "No code at all."}])  # fmt: skip
        args = recipe(folder, tiny_model, executor) + ["--set", f"stages.extract.source={corpus}"]
        if executor == "ray":
            args += ["--set", "executor.backend=ray", "--set", f"executor.address={address}"]
        code, log = run(cluster.env, folder / "run.log", "--only", stages, *args)
        assert code == 0, log[-3000:]
        if executor == "ray":
            ray_log = log
        published[executor] = {
            stage: outcome(folder, executor, stage) for stage in stages.split(",")
        }

    for stage, published_by_ray in published["ray"].items():
        assert published_by_ray == published["local"][stage], stage
    # Tasks landed on both nodes: the actors of one stage are kept for the next with the same
    # resources, so by typecheck (Pyright: seconds per chunk) both are ready to share its chunks.
    assert re.search(r"typecheck: 3 chunks on 2 nodes", ray_log), ray_log[-3000:]
    # Every stage has the same resources (one CPU a worker): the two workers extract started
    # serve them all, with what they hold (the tiny model is loaded once per worker).
    for stage in stages.split(",")[1:]:
        kept_all = rf"{stage}: .*workers: 2 kept from the previous stage, 0 started, 0 lost"
        assert re.search(kept_all, ray_log), stage
    kept, _, _ = published["ray"]["extract"]
    assert sorted(r["name"] for r in kept) == ["area", "clamp", "fetch"]
    assert published["ray"]["responses"][2]["stats"]["cache_misses"] == 8  # 4 prompts x 2
    statuses = sorted(r["exec_status"] for r in published["ray"]["execute"][0])
    assert statuses == ["error", "fail", "no_code", "pass", "timeout"]  # the sandbox, on Ray


def test_chunks_that_fail_for_good_are_named_and_finished_ones_reused(cluster, tmp_path):
    functions = ["def a():\n    return 1\n", None, "def c():\n    return 3\n", None]
    publish_rows(tmp_path, "tester/broken-typecheck", [
        {"id": name, "function": text} for name, text in zip("abcd", functions)
    ])  # fmt: skip
    args = ["--only", "decontaminate", "--set", "name=broken",
            "--set", f"hub.store=local:{tmp_path / 'store'}", "--set", "hub.namespace=tester",
            "--set", f"work_dir={tmp_path / 'work'}", "--set", "stages.decontaminate.chunk_size=1",
            "--set", "executor.backend=ray"]  # fmt: skip
    # No address: a cluster is started on this machine for the run, and stopped after it.
    temp = tempfile.mkdtemp(prefix="rl", dir="/tmp")
    env = {**cluster.env, "RAY_AUTH_MODE": "disabled", "RAY_TMPDIR": temp}
    env.pop("RAY_AUTH_TOKEN_PATH")
    try:
        code, log = run(env, tmp_path / "first.log", *args)
        leaked = processes(temp)
    finally:
        stop([], temp)
        shutil.rmtree(temp, ignore_errors=True)
    assert not leaked, f"the run's own cluster was left running: {leaked}"
    assert code == 2, log[-3000:]
    error = next(line for line in log.splitlines() if "chunks failed" in line)
    assert "stage 'decontaminate': 2 chunks failed: chunk 1 (rows 1-1): row 'b' has no " in error
    assert "chunk 3 (rows 3-3): row 'd' has no function text" in error
    proofs = sorted(p.stem for p in tmp_path.glob("work/*/*/chunks/*.json"))
    assert proofs == ["0000000", "0000002"]  # finished chunks are kept

    # A rerun (on the two-node cluster this time) starts from what is kept.
    code, log = run(
        cluster.env, tmp_path / "rerun.log", *args, "--set", f"executor.address={cluster.address}"
    )
    assert code == 2 and "decontaminate: resuming, 2 chunks already done" in log, log[-3000:]


def test_worker_node_killed_mid_stage_loses_and_repeats_nothing(cluster, tiny_model, tmp_path):
    # 24 chunks of one instruction: the worker node, which starts its actor after the head,
    # still has many to share when it finishes its first.
    instructions = [
        {"instruction_id": f"i{k}", "instruction": f"{text} (variant {k // len(INSTRUCTIONS)})"}
        for k, text in enumerate(INSTRUCTIONS * 3)
    ]
    publish_rows(tmp_path, "tester/killed-instructions", instructions)
    total = len(instructions) * 3
    # Every completion the cache stores is also counted here, even one it would ignore as
    # already stored: a completion generated twice would show as a second row.
    cache = tmp_path / "work" / "llm-cache.sqlite"
    cache.parent.mkdir(parents=True)
    with sqlite3.connect(cache) as db:
        db.executescript(_SCHEMA + """;
            CREATE TABLE stored (key TEXT, sample_index INTEGER);
            CREATE TRIGGER count_stored BEFORE INSERT ON completions
            BEGIN INSERT INTO stored VALUES (NEW.key, NEW.sample_index); END;
        """)  # fmt: skip
    args = recipe(tmp_path, tiny_model, "killed") + [
        "--only", "responses", "--set", "stages.responses.n=3", "--set", "engine.batch_size=1",
        "--set", "stages.responses.chunk_size=1",
        "--set", "executor.backend=ray", "--set", f"executor.address={cluster.address}",
    ]  # fmt: skip
    driver = builder(cluster.env, tmp_path / "driver.log", *args)
    worker_pids = {str(pid) for pid in cluster.pids("worker1")}
    deadline = time.monotonic() + 300
    while True:  # until the worker node has finished a chunk (and holds the next one)
        proofs = [json.loads(p.read_text()) for p in tmp_path.glob("work/*/*/chunks/*.json")]
        if any(p["worker"].rpartition(":")[2] in worker_pids for p in proofs):
            break
        assert driver.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "no chunk finished on the worker node"
        worker_pids |= {str(pid) for pid in cluster.pids("worker1")}  # actors start later
        time.sleep(0.05)
    cluster.kill("worker1")
    driver.wait(timeout=600)
    log = (tmp_path / "driver.log").read_text()
    assert driver.returncode == 0, log[-3000:]
    assert "lost with its worker" in log  # a chunk in flight there was redone on the head

    rows = export_rows(f"local:{tmp_path / 'store'}", "tester/killed-responses", tmp_path / "a")
    rows += export_rows(
        f"local:{tmp_path / 'store'}", "tester/killed-responses", tmp_path / "b", "rejected"
    )
    keys = sorted((r["instruction_id"], r["sample_index"]) for r in rows)
    assert keys == sorted((row["instruction_id"], s) for row in instructions for s in range(3))
    stats = manifest(tmp_path, "tester/killed-responses")["stats"]
    assert stats["cache_hits"] + stats["cache_misses"] == total
    with sqlite3.connect(cache) as db:
        assert db.execute("SELECT COUNT(*) FROM completions").fetchone()[0] == total
        assert db.execute("SELECT COUNT(*) FROM stored").fetchone()[0] == total
