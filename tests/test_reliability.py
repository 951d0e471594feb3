"""Defects found by probing the pipeline as users and attackers would: bad numbers, rows that
vanish, valid Python that lost its functions, hostile recipes and corpora, damaged checkpoints,
local paths in published records. Each test failed before its fix."""

from __future__ import annotations

import json
import logging
import os

import pytest

from builder.errors import RecipeError
from builder.pipeline.recipe import load_recipe
from builder.store import open_store
from tests.helpers import TINY, export_rows, run_cli, write_corpus


def _args(tmp_path, name="rel", corpus=None):
    corpus = corpus or write_corpus(tmp_path / "corpus")
    return [
        "--set", f"name={name}", "--set", f"hub.store=local:{tmp_path / 'store'}",
        "--set", "hub.namespace=tester", "--set", f"work_dir={tmp_path / 'work'}",
        "--set", f"stages.extract.source={corpus}", "--set", "stages.extract.num_proc=1",
    ]  # fmt: skip


def _one_error(caplog) -> str:
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "\n" not in errors[0], errors
    return errors[0]


@pytest.mark.parametrize(
    "setting, message",
    [
        ("stages.responses.n=0", "'stages.responses.n' must be >= 1, got 0"),
        ("stages.responses.n=-2", "'stages.responses.n' must be >= 1, got -2"),
        ("stages.concepts.temperature=-1", "'stages.concepts.temperature' must be >= 0"),
        ("stages.judge.max_tokens=0", "'stages.judge.max_tokens' must be >= 1, got 0"),
        ("stages.instructions.top_p=0", "'stages.instructions.top_p' must be > 0"),
        ("stages.extract.limit=-1", "'stages.extract.limit' must be >= 0, got -1"),
        ("stages.judge.limit=-5", "'stages.judge.limit' must be >= 0, got -5"),
        ("stages.execute.timeout_s=.nan", "'stages.execute.timeout_s' must be a finite number"),
        ("stages.execute.timeout_s=.inf", "'stages.execute.timeout_s' must be a finite number"),
        ("engine.gpu_memory_utilization=1.5", "'engine.gpu_memory_utilization' must be <= 1"),
        ("engine.batch_size=0", "'engine.batch_size' must be >= 1, got 0"),
    ],
)
def test_numbers_out_of_range_are_refused_when_the_recipe_loads(setting, message):
    with pytest.raises(RecipeError, match=f"tiny.yaml: {message}".replace(".", r"\.")):
        load_recipe(TINY, [setting])


def test_an_out_of_range_setting_stops_the_run_before_anything_is_published(tmp_path, caplog):
    args = _args(tmp_path)
    assert run_cli("run", TINY, "--only", "extract", *args, "--set", "stages.responses.n=0") == 2
    assert "'stages.responses.n' must be >= 1, got 0" in _one_error(caplog)
    assert not open_store(f"local:{tmp_path / 'store'}").repo_exists("tester/rel-extract")


def test_the_runner_refuses_to_publish_rows_that_vanished(tmp_path, caplog, monkeypatch):
    from builder.pipeline.rows import ChunkResult
    from builder.stages.seeds.filter import FilterStage

    args = _args(tmp_path) + ["--set", "stages.filter.num_proc=1"]
    assert run_cli("run", TINY, "--only", "extract", *args) == 0
    monkeypatch.setattr(FilterStage, "process", lambda self, rows: ChunkResult(kept=rows[1:]))
    caplog.clear()
    assert run_cli("run", TINY, "--only", "filter", *args) == 2
    assert "3 rows in should give 3 rows, but 2 were kept and 0 dropped" in _one_error(caplog)
    assert not open_store(f"local:{tmp_path / 'store'}").repo_exists("tester/rel-filter")


def test_every_file_python_runs_gives_its_functions(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    body = 'def {name}(x):\n    """Doc of {name}."""\n    return x\n'
    (corpus / "bom.py").write_bytes(b"\xef\xbb\xbf" + body.format(name="with_bom").encode())
    (corpus / "feed.py").write_text("import os\n\f\n" + body.format(name="after_form_feed"))
    (corpus / "sep.py").write_text("# a\u2028b\n" + body.format(name="after_line_separator"))
    (corpus / "cr.py").write_text(body.format(name="with_cr").replace("\n", "\r"))
    assert run_cli("run", TINY, "--only", "extract", *_args(tmp_path, corpus=corpus)) == 0
    rows = export_rows(f"local:{tmp_path / 'store'}", "tester/rel-extract", tmp_path / "out")
    assert sorted(r["name"] for r in rows) == [
        "after_form_feed", "after_line_separator", "with_bom", "with_cr"]  # fmt: skip
    assert all(r["function"].startswith("def ") for r in rows)


def test_a_duplicate_recipe_key_is_an_error_naming_key_line_and_file(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("name: mine\nstages:\n  extract: {}\nname: other\n")
    with pytest.raises(RecipeError, match=r"dup\.yaml: duplicate key 'name' on line 4 \(first on line 1\)"):
        load_recipe(path)
    path.write_text("name: x\nstages:\n  extract:\n    limit: 1\n    limit: 2\n")
    with pytest.raises(RecipeError, match="duplicate key 'limit' on line 5"):
        load_recipe(path)


@pytest.mark.parametrize("source", ["", "/tmp,,/usr", "/tmp, "])
def test_an_empty_extract_source_is_an_error(source):
    with pytest.raises(RecipeError, match="stages.extract.source is empty or has an empty part"):
        load_recipe(TINY, [f"stages.extract.source={source}"])


def test_a_recipe_that_is_not_utf8_is_one_line(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(RecipeError, match=r"latin1\.yaml: not UTF-8 text \(byte 9\)"):
        load_recipe(path)


BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
    for i in range(8)
)  # 10 * 8**8 (167 million) strings once expanded


@pytest.mark.parametrize("use", ["name: *i", "name: x\nstages:\n  decontaminate:\n    sources: {k: *i}"])
def test_an_alias_bomb_is_refused_quickly_with_a_short_message(tmp_path, use):
    path = tmp_path / "bomb.yaml"
    path.write_text(f"{BOMB}{use}\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    message = str(info.value)
    assert len(message) < 300 and "\n" not in message
    assert "more than 100,000 values once aliases are expanded" in message


def test_a_deeply_nested_corpus_is_walked(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    folder = corpus
    for _ in range(1000):  # one by one: Path.mkdir(parents=True) recurses too
        folder = folder / "d"
        folder.mkdir()
    (folder / "deep.py").write_text('def deep(x):\n    """At the bottom."""\n    return x\n')
    try:
        assert run_cli("run", TINY, "--only", "extract", *_args(tmp_path, corpus=corpus)) == 0
        rows = export_rows(f"local:{tmp_path / 'store'}", "tester/rel-extract", tmp_path / "out")
        assert [r["name"] for r in rows] == ["deep"] and rows[0]["path"].count("d/") == 1000
    finally:  # bottom up: shutil.rmtree (and pytest's clean-up with it) recurses
        (folder / "deep.py").unlink()
        while folder != corpus:
            folder.rmdir()
            folder = folder.parent


def test_links_out_of_the_corpus_are_not_followed_and_are_counted(tmp_path):
    secret = tmp_path / "outside" / "secret.py"
    secret.parent.mkdir()
    secret.write_text('def leaked(x):\n    """Not part of the corpus."""\n    return x\n')
    corpus = write_corpus(tmp_path / "corpus")
    os.symlink(secret, corpus / "passwd.py")
    os.symlink(corpus / "pkg" / "a.py", corpus / "alias.py")  # inside: an ordinary file
    assert run_cli("run", TINY, "--only", "extract", *_args(tmp_path, corpus=corpus)) == 0
    store = f"local:{tmp_path / 'store'}"
    kept = export_rows(store, "tester/rel-extract", tmp_path / "k")
    assert "leaked" not in {r["name"] for r in kept} and "area" in {r["name"] for r in kept}
    dropped = export_rows(store, "tester/rel-extract", tmp_path / "d", split="rejected")
    (link,) = [r for r in dropped if r["path"] == "passwd.py"]
    assert link["drop_reason"] == "unreadable" and "outside the corpus" in link["drop_detail"]


def test_published_records_name_no_local_path(tmp_path, tiny_model):
    args = _args(tmp_path) + ["--set", f"model={tiny_model}"]
    assert run_cli("run", TINY, "--only", "extract", *args) == 0
    store = open_store(f"local:{tmp_path / 'store'}")
    manifest_text = store.read_text("tester/rel-extract", "main", "manifest.json")
    card = store.read_text("tester/rel-extract", "main", "README.md")
    rows = export_rows(f"local:{tmp_path / 'store'}", "tester/rel-extract", tmp_path / "out")
    for text in (manifest_text, card, json.dumps(rows)):
        assert str(tmp_path) not in text
    manifest = json.loads(manifest_text)
    assert manifest["input"]["path"] == "corpus" and manifest["recipe"]["file"] == "tiny.yaml"
    assert {r["source"] for r in rows} == {"dir:corpus"}
    from builder.pipeline.repo_names import step_context
    from builder.registry import STEPS

    recipe = load_recipe(TINY, [a for a in args if a != "--set"])
    judge = STEPS.load("judge")(recipe.stages["judge"], step_context(recipe, store))
    assert judge.fingerprint_extra()["model"] == tiny_model.name  # its name, not its path


def test_a_damaged_checkpoint_is_named_and_redone(tmp_path, caplog, monkeypatch):
    import builder.pipeline.step_runner as runner

    args = _args(tmp_path) + ["--set", "stages.extract.limit=4"]
    monkeypatch.setattr(runner, "publish", lambda *a, **k: (_ for _ in ()).throw(OSError("hub down")))
    monkeypatch.setattr("builder.stages.extract.ExtractStage.chunk_size", 1)
    with pytest.raises(OSError, match="hub down"):
        run_cli("run", TINY, "--only", "extract", *args)
    monkeypatch.undo()
    monkeypatch.setattr("builder.stages.extract.ExtractStage.chunk_size", 1)
    chunks = sorted((tmp_path / "work").glob("*/*/chunks"))[0]
    (chunks / "0000000.json").write_text("{garbled")
    kept = sorted(chunks.glob("*.kept.parquet"))[-1]
    kept.write_bytes(kept.read_bytes()[:20])  # truncated
    flipped = sorted(chunks.glob("*.kept.parquet"))[0]
    data = bytearray(flipped.read_bytes())
    data[len(data) // 3] ^= 0xFF  # one byte inside its data: still a parquet file
    flipped.write_bytes(bytes(data))
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert run_cli("run", TINY, "--only", "extract", *args) == 0
    assert "checkpoint of chunk 0 is damaged (0000000.json is not a proof)" in caplog.text
    assert f"{kept.name}:" in caplog.text and "chunks processed, 1 reused" in caplog.text
    assert f"{flipped.name} differs from what was written (SHA-256)" in caplog.text
    rows = export_rows(f"local:{tmp_path / 'store'}", "tester/rel-extract", tmp_path / "out")
    assert sorted(r["name"] for r in rows) == ["area", "clamp", "fetch"]


def test_tiny_model_into_an_unwritable_path_is_one_line(tmp_path, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert run_cli("tiny-model", blocker / "model") == 2
    assert "cannot write the tiny model to" in _one_error(caplog)


def test_exported_rows_stay_one_per_line_whatever_their_text(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "odd.py").write_text('def odd(x):\n    """Two\u2028lines\x85and\u2029more."""\n    return x\n')
    assert run_cli("run", TINY, "--only", "extract", *_args(tmp_path, corpus=corpus)) == 0
    out = tmp_path / "rows.jsonl"
    assert run_cli("store", "export", "tester/rel-extract", out, "--store", f"local:{tmp_path / 'store'}") == 0
    (line,) = out.read_text().splitlines()  # what many JSON Lines readers do
    assert json.loads(line)["docstring"] == "Two\u2028lines\x85and\u2029more."
