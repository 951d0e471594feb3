"""judge, concepts, instructions and responses end to end through `builder run`, on the tiny
random model (CPU): published revisions and their counts, reruns that ask the engine for nothing
twice, and `kill -9` in the middle of `responses`. The end-to-end run and the kill are run with
the `transformers` backend and with `vllm` (its CPU build; skipped only where it is missing)."""

import logging
import sqlite3

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from builder.store import open_store
from tests import witness
from tests.helpers import (
    FAST_VLLM,
    TINY,
    export_rows,
    head_manifest,
    needs_vllm,
    recipe_settings,
    run_cli,
    run_from_corpus,
    sets,
    write_corpus,
)

GENERATION = ("judge", "concepts", "instructions", "responses")

INSTRUCTIONS = [
    "Write a Python function `is_palindrome(text: str) -> bool` that ignores case and spaces.",
    (
        "Implement `chunks(items: list, size: int) -> list[list]` splitting a list into pieces of "
        "`size` elements; the last piece may be shorter. Raise ValueError if size < 1."
    ),
    "Create a class `Counter` with `increment()`, `reset()` and a read-only `value` property.",
    "Write `gcd(a: int, b: int) -> int` using Euclid's algorithm, for non-negative integers.",
    "Write `to_snake_case(name: str) -> str` turning `camelCaseNames` into `camel_case_names`.",
    "Implement `median(values: list[float]) -> float` without sorting the input in place.",
    "Write `count_vowels(text: str) -> dict[str, int]` counting each vowel, case-insensitively.",
    (
        "Write `flatten_dict(d: dict) -> dict` that joins nested keys with dots, e.g. "
        "{'a': {'b': 1}} becomes {'a.b': 1}."
    ),
]


def settings(tmp_path, tiny_model, name="gen"):
    """A recipe small enough to run in seconds on CPU (short prompts, few tokens). The model is
    random: its steps keep (almost) nothing, so the run goes on past an empty step."""
    return ["--set", "stop_when_empty=false", *recipe_settings(tmp_path, name), *sets({
        "model": tiny_model, "engine.cpu_threads": 1,
        "stages.judge.num_fewshots": 2, "stages.judge.max_tokens": 4,
        "stages.concepts.num_fewshots": 1, "stages.concepts.max_tokens": 24,
        "stages.instructions.num_fewshots": 1, "stages.instructions.max_tokens": 24,
        "stages.responses.num_fewshots": 0, "stages.responses.max_tokens": 24,
        "stages.responses.n": 2,
    })]  # fmt: skip


VLLM = ["--set", "engine.backend=vllm"] + [
    arg
    for key, value in FAST_VLLM.items()
    for arg in ("--set", f"engine.vllm_options.{key}={value}")
]
# The generation stages through each backend: the recipe's own (transformers), and vLLM.
BACKENDS = [
    pytest.param([], id="transformers"),
    pytest.param(VLLM, id="vllm", marks=[needs_vllm, pytest.mark.slow]),
]


def manifest(tmp_path, repo):
    return head_manifest(f"local:{tmp_path / 'store'}", repo)


def card(tmp_path, repo):
    store = open_store(f"local:{tmp_path / 'store'}")
    return store.read_text(repo, store.resolve(repo), "README.md")


def publish_rows(tmp_path, repo, rows):
    """Rows written by hand as if a stage had published them (a dataset without a manifest)."""
    store = open_store(f"local:{tmp_path / 'store'}")
    path = tmp_path / f"{repo.replace('/', '--')}.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    store.create_repo(repo, private=True)
    store.commit(repo, {"data/train-00000-of-00001.parquet": path}, "rows written by hand")


def cached_rows(tmp_path) -> int:
    path = tmp_path / "work" / "llm-cache.sqlite"
    if not path.exists():
        return 0
    with sqlite3.connect(path, timeout=30) as db:
        try:
            return db.execute("SELECT COUNT(*) FROM completions").fetchone()[0]
        except sqlite3.OperationalError:  # the table is not created yet
            return 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_generation_stages_run_end_to_end_and_publish_their_counts(
    tiny_model, tmp_path, caplog, backend
):
    caplog.set_level(logging.INFO)
    args = settings(tmp_path, tiny_model) + backend
    run_from_corpus(tmp_path, args, ",".join(GENERATION))
    assert caplog.text.count("engine for") == 1  # the four stages shared one engine

    judge = manifest(tmp_path, "tester/gen-judge")
    assert judge["rows_in"] == 3 and judge["settings"]["model"] == tiny_model.name  # a folder: its name only
    assert judge["stats"]["cache_misses"] == 3 and judge["stats"]["cache_hits"] == 0
    assert judge["rows_out"] + sum(judge["drops"].values()) == 3
    assert set(judge["drops"]) <= {"judge_no", "judge_unclear"}
    rejected = export_rows(
        f"local:{tmp_path / 'store'}", "tester/gen-judge", tmp_path / "j", "rejected"
    )
    assert all("judge_answer" in row and row["drop_reason"] for row in rejected)
    text = card(tmp_path, "tester/gen-judge")
    assert "| cache_misses | 3 |" in text and "model_revision" in text and "## Notes" in text
    # A random model's judge keeps (almost) nothing; each later stage still publishes a revision
    # that reads the one before it.
    previous = judge
    for stage in GENERATION[1:]:
        published = manifest(tmp_path, f"tester/gen-{stage}")
        assert published["input"]["revision"] == open_store(f"local:{tmp_path / 'store'}").resolve(
            previous["repo"]
        )
        assert published["rows_in"] == previous["rows_out"]
        text = card(tmp_path, f"tester/gen-{stage}")
        engine = "vllm" if backend else "transformers"
        assert "Sampling: n=" in text and f"with the `{engine}` engine" in text
        previous = published


def test_stages_on_real_rows_and_reruns_ask_only_for_what_changed(tiny_model, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    args = settings(tmp_path, tiny_model, name="rows")
    corpus = write_corpus(tmp_path / "corpus")
    assert (
        run_cli("run", TINY, "--only", "extract", *args, "--set", f"stages.extract.source={corpus}")
        == 0
    )
    # concepts straight from the extracted functions.
    assert (
        run_cli("run", TINY, "--only", "concepts", *args, "--set", "stages.concepts.input=extract")
        == 0
    )
    concepts = manifest(tmp_path, "tester/rows-concepts")
    assert concepts["rows_in"] == 3 and concepts["stats"]["samples"] == 3
    assert concepts["rows_out"] + sum(concepts["drops"].values()) == 3
    dropped = export_rows(
        f"local:{tmp_path / 'store'}", "tester/rows-concepts", tmp_path / "c", "rejected"
    )
    assert all(
        row["finish_reason"] in ("stop", "length") and "completion" in row for row in dropped
    )
    assert (
        "truncated" in concepts["drops"]
        or "malformed_concepts" in concepts["drops"]
        or concepts["rows_out"]
    )

    # instructions and responses on rows written by hand, as a real model would have made them.
    publish_rows(
        tmp_path,
        "tester/rows-concepts",
        [{"id": f"seed{i}", "concepts": ["recursion", "string slicing"]} for i in range(3)],
    )
    assert run_cli("run", TINY, "--only", "instructions", *args) == 0
    instructions = manifest(tmp_path, "tester/rows-instructions")
    assert instructions["rows_in"] == 3 and instructions["stats"]["cache_misses"] == 3
    rows = export_rows(
        f"local:{tmp_path / 'store'}", "tester/rows-instructions", tmp_path / "i", "rejected"
    )
    rows += export_rows(f"local:{tmp_path / 'store'}", "tester/rows-instructions", tmp_path / "i2")
    assert all(r["language"] == "Python" and r["difficulty"] in ("medium", "hard") for r in rows)

    publish_rows(
        tmp_path,
        "tester/rows-instructions",
        [
            {"instruction_id": f"i{k}", "instruction": text}
            for k, text in enumerate(INSTRUCTIONS[:4])
        ],
    )
    assert run_cli("run", TINY, "--only", "responses", *args) == 0
    first = manifest(tmp_path, "tester/rows-responses")
    assert first["rows_in"] == 4
    assert (first["stats"]["cache_misses"], first["stats"]["cache_hits"]) == (8, 0)
    assert first["rows_out"] + sum(first["drops"].values()) == 8  # every sample is a row
    samples = export_rows(
        f"local:{tmp_path / 'store'}", "tester/rows-responses", tmp_path / "r", "rejected"
    )
    samples += export_rows(f"local:{tmp_path / 'store'}", "tester/rows-responses", tmp_path / "r2")
    assert sorted((r["instruction_id"], r["sample_index"]) for r in samples) == [
        (f"i{k}", s) for k in range(4) for s in range(2)
    ]
    assert all(
        r["response"] is not None
        and r["response_id"] == f"{r['instruction_id']}-{r['sample_index']}"
        for r in samples
    )

    # The same command again publishes nothing; n raised to 3 asks only for each sample 2.
    caplog.clear()
    assert run_cli("run", TINY, "--only", "responses", *args) == 0
    assert "responses: up to date" in caplog.text
    assert run_cli("run", TINY, "--only", "responses", *args, "--set", "stages.responses.n=3") == 0
    third = manifest(tmp_path, "tester/rows-responses")
    assert (third["stats"]["cache_misses"], third["stats"]["cache_hits"]) == (4, 8)
    assert third["rows_out"] + sum(third["drops"].values()) == 12
    # A changed temperature changes every request.
    assert (
        run_cli(
            "run", TINY, "--only", "responses", *args, "--set", "stages.responses.temperature=0.2"
        )
        == 0
    )
    assert manifest(tmp_path, "tester/rows-responses")["stats"]["cache_misses"] == 8


@pytest.mark.parametrize(
    "backend",
    [
        pytest.param(["--set", "engine.batch_size=1"], id="transformers"),
        pytest.param(
            VLLM + ["--set", "engine.vllm_options.max_num_seqs=1"], id="vllm",
            marks=[needs_vllm, pytest.mark.slow],
        ),
    ],
)
def test_kill_9_during_responses_then_rerun_requests_nothing_twice(
    tiny_model, tmp_path, caplog, backend
):
    caplog.set_level(logging.INFO)
    args = settings(tmp_path, tiny_model, name="killed") + ["--set", "stages.responses.n=3"]
    args += backend
    publish_rows(
        tmp_path,
        "tester/killed-instructions",
        [{"instruction_id": f"i{k}", "instruction": text} for k, text in enumerate(INSTRUCTIONS)],
    )
    total = len(INSTRUCTIONS) * 3
    # The real engine runs; the witness only stops it before its third request's samples are
    # stored (a kill timed by polling lost the race to a fast tiny model), then it is killed -9.
    witness.kill_9_when_paused(
        tmp_path / "witness.jsonl",
        ["run", TINY, "--only", "responses", *args],
        "stored:2",
        "two requests stored",
    )
    at_kill = cached_rows(tmp_path)
    assert at_kill == 2 * 3, "each stored request holds its 3 samples, and nothing more"
    assert not open_store(f"local:{tmp_path / 'store'}").repo_exists("tester/killed-responses")

    assert run_cli("run", TINY, "--only", "responses", *args) == 0
    stats = manifest(tmp_path, "tester/killed-responses")["stats"]
    print(
        f"kill -9 with {at_kill}/{total} samples cached; rerun: {stats['cache_hits']} hits, "
        f"{stats['cache_misses']} misses"
    )
    # Everything stored before the kill was reused; only the rest was generated.
    assert stats["cache_hits"] == at_kill and stats["cache_misses"] == total - at_kill
    assert cached_rows(tmp_path) == total  # one row per sample: nothing stored twice
    rows = export_rows(f"local:{tmp_path / 'store'}", "tester/killed-responses", tmp_path / "a")
    rows += export_rows(
        f"local:{tmp_path / 'store'}", "tester/killed-responses", tmp_path / "b", "rejected"
    )
    keys = [(r["instruction_id"], r["sample_index"]) for r in rows]
    assert sorted(keys) == [(f"i{k}", s) for k in range(len(INSTRUCTIONS)) for s in range(3)]


@pytest.mark.parametrize(
    "model, message",
    [
        ("/nonexistent/model-dir", "model '/nonexistent/model-dir' not found"),
        ("nobody/no-such-model", "model 'nobody/no-such-model'"),
    ],
)
def test_a_model_that_does_not_exist_is_a_one_line_error(
    tiny_model, tmp_path, caplog, model, message
):
    args = settings(tmp_path, tiny_model, name="nomodel")
    corpus = write_corpus(tmp_path / "corpus")
    assert (
        run_cli("run", TINY, "--only", "extract", *args, "--set", f"stages.extract.source={corpus}")
        == 0
    )
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        code = run_cli(
            "run",
            TINY,
            "--only",
            "judge",
            *args,
            "--set",
            "stages.judge.input=extract",
            "--set",
            f"model={model}",
        )
    assert code == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and message in errors[0] and "\n" not in errors[0]
    assert not open_store(f"local:{tmp_path / 'store'}").repo_exists("tester/nomodel-judge")
