"""The generation stages on rows that parse, through every stage to `select`, and their resume,
checked with independent witnesses (`tests/witness.py`): the `witness` engine answers each
prompt with the matching parts of one of our few-shot examples (so judge, concepts,
instructions and responses all have rows to parse) and writes down every sample it is asked
for; the `witness` sandbox writes down every program it runs. Tests count work from those
records, not from the cache counts the stages report about themselves."""

from __future__ import annotations

import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from builder.sandbox.response_code import program_from_response
from builder.stages.generation.library import fewshot_examples
from builder.stages.generation.prompting import render_concepts
from builder.store import open_store
from tests import witness
from tests.helpers import TINY, export_rows, head_manifest, recipe_settings, run_cli, write_corpus

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")
CHAIN = ("judge", "concepts", "instructions", "responses", "execute", "mutate", "select")
NO_TO_FETCH = [["async def fetch(url):", "No\n"]]  # the judge drops one seed of three


def settings(tmp_path, name):
    model = tmp_path / "model"  # the witness engine loads nothing: a folder that pins is enough
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text("{}")
    return recipe_settings(
        tmp_path, name, model=model, engine__backend="witness", sandbox__backend="witness",
        stages__judge__input="extract", stages__responses__n=2, stages__execute__workers=1,
        stages__mutate__workers=1,
    )


def manifest(tmp_path, repo):
    return head_manifest(f"local:{tmp_path / 'store'}", repo)


def rows(tmp_path, repo, split="train"):
    return export_rows(f"local:{tmp_path / 'store'}", repo, tmp_path / "export" / repo, split)


@needs_bwrap
def test_every_generation_stage_gets_rows_that_parse_and_select_keeps_some(tmp_path):
    args = settings(tmp_path, "gw")
    corpus = write_corpus(tmp_path / "corpus")
    record = tmp_path / "first.jsonl"
    with witness.installed(record, answers=NO_TO_FETCH):
        assert run_cli("run", TINY, "--only", "extract," + ",".join(CHAIN), *args,
                       "--set", f"stages.extract.source={corpus}") == 0  # fmt: skip

    judge = manifest(tmp_path, "tester/gw-judge")
    assert (judge["rows_in"], judge["rows_out"], judge["drops"]) == (3, 2, {"judge_no": 1})
    seeds = rows(tmp_path, "tester/gw-judge")
    assert {r["name"] for r in seeds} == {"area", "clamp"}
    assert {r["judge_verdict"] for r in seeds} == {"yes"}

    concepts = rows(tmp_path, "tester/gw-concepts")
    known = {render_concepts(e.concepts): e for e in fewshot_examples()}
    assert len(concepts) == 2 and all(", ".join(r["concepts"]) in known for r in concepts)

    instructions = rows(tmp_path, "tester/gw-instructions")
    assert len(instructions) == 2
    for row in instructions:  # each seed's instruction is its concepts' example's
        assert row["instruction"] == known[", ".join(row["concepts"])].instruction

    responses = rows(tmp_path, "tester/gw-responses")
    assert manifest(tmp_path, "tester/gw-responses")["drops"] == {}
    assert sorted(r["sample_index"] for r in responses) == [0, 0, 1, 1]
    assert all(r["implementation"] and "assert" in r["tests"] for r in responses)

    executed = rows(tmp_path, "tester/gw-execute")
    status = {(r["instruction_id"], r["sample_index"]): r["exec_status"] for r in executed}
    assert sorted(status.values()) == ["fail", "fail", "pass", "pass"]
    assert all(s == ("pass" if index == 0 else "fail") for (_, index), s in status.items())

    chosen = rows(tmp_path, "tester/gw-select")
    tasks = {r["instruction"] for r in instructions}
    assert len(chosen) == len(tasks) >= 1  # one passing sample per distinct task
    assert all(r["sample_index"] == 0 and r["messages"][0]["content"] in tasks for r in chosen)

    # Each stage read the revision the one before it published, all of its rows.
    store = open_store(f"local:{tmp_path / 'store'}")
    previous = judge
    for stage in CHAIN[1:]:
        published = manifest(tmp_path, f"tester/gw-{stage}")
        assert published["input"]["revision"] == store.resolve(previous["repo"])
        assert published["rows_in"] == previous["rows_out"] > 0
        previous = published
    card = store.read_text("tester/gw-responses", store.resolve("tester/gw-responses"), "README.md")
    assert "Sampling: n=2" in card

    # What the witnesses saw: every sample asked for once (3 judge, 2 concepts, 2 instructions,
    # 2 x 2 responses), every distinct program run once.
    asked = witness.counted(record, "sample")
    assert sum(asked.values()) == 11 and set(asked.values()) == {1}
    programs = {program_from_response(r["response"]) for r in responses}
    ran = witness.counted(record, "program")
    assert set(ran.values()) == {1}  # the responses' programs, then the passing ones' mutants
    mutated = manifest(tmp_path, "tester/gw-mutate")
    assert mutated["stats"]["measured"] == 2 and mutated["stats"]["mutants"] > 0
    assert set(ran) - {witness.digest(p) for p in programs} and len(ran) == len(programs) + (
        mutated["stats"]["cache_misses"])

    # The same command again: everything is up to date, nothing is asked or run.
    again = tmp_path / "again.jsonl"
    with witness.installed(again, answers=NO_TO_FETCH):
        assert run_cli("run", TINY, "--only", ",".join(CHAIN), *args) == 0
    assert witness.read(again) == []

    # n raised to 3: the engine is asked only for each response's sample 2, and `execute`
    # runs only programs it has no verdict for (sample 2's text is sample 1's: none).
    more = tmp_path / "more.jsonl"
    with witness.installed(more, answers=NO_TO_FETCH):
        assert run_cli("run", TINY, "--only", "responses,execute,mutate,select", *args,
                       "--set", "stages.responses.n=3") == 0  # fmt: skip
    asked_again = witness.keys(more, "sample")
    assert len(asked_again) == 2 and all(k.endswith(":2") for k in asked_again)
    assert witness.keys(more, "program") == []
    assert len(rows(tmp_path, "tester/gw-execute")) == 6


INSTRUCTIONS = [e.instruction for e in fewshot_examples()][:8]


def publish_instructions(tmp_path, repo):
    store = open_store(f"local:{tmp_path / 'store'}")
    path = tmp_path / "instructions.parquet"
    table = [{"instruction_id": f"i{k}", "instruction": text} for k, text in enumerate(INSTRUCTIONS)]
    pq.write_table(pa.Table.from_pylist(table), path)
    store.create_repo(repo, private=True)
    store.commit(repo, {"data/train-00000-of-00001.parquet": path}, "rows written by hand")


def test_kill_9_during_responses_then_rerun_asks_for_each_sample_once(tmp_path):
    """The engine stops after 3 of 8 requests (3 samples each) are done and cached; `kill -9`;
    the rerun asks for exactly the samples not done, and publishes every sample."""
    args = settings(tmp_path, "killed") + ["--set", "stages.responses.n=3"]
    publish_instructions(tmp_path, "tester/killed-instructions")
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    witness.kill_9_when_paused(first, ["run", TINY, "--only", "responses", *args], "sample:9",
                               "the engine to pause")  # fmt: skip
    done = witness.counted(first, "sample", "done")
    assert len(done) == 9 and witness.counted(first, "sample") == done  # none in flight
    assert not open_store(f"local:{tmp_path / 'store'}").repo_exists("tester/killed-responses")

    with witness.installed(second):
        assert run_cli("run", TINY, "--only", "responses", *args) == 0
    again = witness.counted(second, "sample")
    assert set(again.values()) == {1} and not set(again) & set(done)  # nothing asked twice
    assert len(again) + len(done) == len(INSTRUCTIONS) * 3  # and nothing left out
    published = rows(tmp_path, "tester/killed-responses")  # every sample parses: all kept
    keys = sorted((r["instruction_id"], r["sample_index"]) for r in published)
    assert keys == sorted((f"i{k}", s) for k in range(len(INSTRUCTIONS)) for s in range(3))
