"""`builder run` / `status` / `store` end to end, on the local store and on the fake Hub."""

import json
import logging

import pytest

from builder.errors import StageError
from builder.store import open_store
from tests.helpers import TINY, export_rows, recipe_settings, run_cli, write_corpus


@pytest.fixture
def settings(store_uri, tmp_path, request):
    # One recipe name per test, so tests sharing the session's fake Hub never see each other.
    name = "t" + str(abs(hash(request.node.nodeid)) % 10**8)
    corpus = write_corpus(tmp_path / "corpus")
    args = recipe_settings(
        tmp_path, name, store_uri, stages__extract__source=corpus, stages__extract__num_proc=2
    )
    return args, f"tester/{name}-extract"


def status(settings, capsys):
    capsys.readouterr()
    assert run_cli("status", TINY, *settings, "--json") == 0
    entries = json.loads(capsys.readouterr().out)
    assert [e["stage"] for e in entries][:2] == ["extract", "filter"]  # recipe order
    assert all(e["revision"] is None for e in entries[1:])  # nothing else published
    return entries


def test_run_publishes_once_and_status_reports_it(settings, store_uri, tmp_path, capsys, caplog):
    args, repo = settings
    assert run_cli("run", TINY, "--only", "extract", *args) == 0
    store = open_store(store_uri)
    revision = store.resolve(repo)
    entry = status(args, capsys)[0]
    assert entry["stage"] == "extract" and entry["repo"] == repo
    assert entry["revision"] == revision and entry["rows"] == 3 and entry["current"] is True

    rows = export_rows(store_uri, f"{repo}@{revision}", tmp_path)
    # The copy of `area` is an exact duplicate; methods, undocumented and single-quoted
    # docstrings are not seeds.
    assert sorted(r["name"] for r in rows) == ["area", "clamp", "fetch"]
    rejected = export_rows(store_uri, f"{repo}@{revision}", tmp_path, split="rejected")
    assert sorted(r["drop_reason"] for r in rejected) == ["duplicate", "syntax_error"]

    manifest = json.loads(store.read_text(repo, revision, "manifest.json"))
    assert manifest["rows_in"] == 4 and manifest["rows_out"] == 3
    assert manifest["drops"] == {"duplicate": 1, "syntax_error": 1}
    assert manifest["input"]["kind"] == "dir" and len(manifest["input"]["revision"]) == 40
    card = store.read_text(repo, revision, "README.md")
    assert card.startswith("---\n") and "config_name: default" in card
    assert "| syntax_error | 1 |" in card and manifest["fingerprint"] in card

    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert run_cli("run", TINY, "--only", "extract", *args) == 0
    assert store.resolve(repo) == revision  # nothing new published
    assert len(store.log(repo)) == 2  # the initial commit and the one publish
    assert f"up to date, {repo}@{revision} is current" in caplog.text


def test_changes_make_the_stage_stale_and_republish(settings, store_uri, tmp_path, capsys):
    args, repo = settings
    assert run_cli("run", TINY, "--only", "extract", *args) == 0
    first = open_store(store_uri).resolve(repo)
    (tmp_path / "corpus" / "new.py").write_text('def twice(x):\n    """Double."""\n    return 2 * x\n')
    assert status(args, capsys)[0]["current"] is False
    assert run_cli("run", TINY, "--only", "extract", *args) == 0
    second = open_store(store_uri).resolve(repo)
    assert second != first and status(args, capsys)[0]["rows"] == 4  # `twice` added
    # A parameter that changes the output is part of the fingerprint; num_proc is not.
    assert run_cli("run", TINY, "--only", "extract", *args, "--set", "stages.extract.num_proc=1") == 0
    assert open_store(store_uri).resolve(repo) == second
    # broken.py alone (sorted first): published, then the run stops, as nothing was kept
    assert run_cli("run", TINY, "--only", "extract", *args, "--set", "stages.extract.limit=1") == 2
    assert status(args, capsys)[0]["rows"] == 0
    # Nothing kept: the default config still exists, as one empty shard, so that
    # `load_dataset(repo)` gives an empty dataset and not the rejected rows.
    store = open_store(store_uri)
    manifest = json.loads(store.read_text(repo, "main", "manifest.json"))
    assert len(manifest["splits"]["train"]["files"]) == 1 and manifest["rows_out"] == 0
    assert "config_name: default" in store.read_text(repo, "main", "README.md")


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--only", "nope"], "unknown stage 'nope'"),
        (["--only", ","], "--only names no stage"),
        (["--set", "stages.extract.colour=red"], "unknown key 'stages.extract.colour'"),
        (["--set", "stages.extract.source=/does/not/exist"], "corpus directory does not exist: /does/not/exist"),
    ],
)
def test_bad_input_is_one_line_nonzero_and_publishes_nothing(settings, store_uri, extra, message, caplog):
    args, repo = settings
    with caplog.at_level(logging.ERROR):
        assert run_cli("run", TINY, "--only", "extract", *args, *extra) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and message in errors[0] and "\n" not in errors[0]
    assert not open_store(store_uri).repo_exists(repo)


def test_missing_recipe_and_missing_revision(tmp_path, caplog):
    assert run_cli("run", tmp_path / "absent.yaml") == 2
    assert "recipe not found" in caplog.text
    store = f"local:{tmp_path / 's'}"
    open_store(store).create_repo("tester/x", private=True)
    assert run_cli("store", "show", "tester/x@0123456789abcdef", "--store", store) == 2
    assert "revision '0123456789abcdef' not found in tester/x" in caplog.text


def test_a_later_stage_needs_its_input_published(tmp_path, caplog, monkeypatch):
    # `filter` is not implemented yet; planning the input check uses the runner directly.
    from builder.errors import StageError
    from builder.pipeline.recipe import load_recipe
    from builder.pipeline.step_runner import plan_step

    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text("name: r\nhub:\n  store: local:" + str(tmp_path / "s") + "\n  namespace: ns\n"
                           "stages:\n  extract: {}\n  filter: {}\n")
    recipe = load_recipe(recipe_file)
    with pytest.raises(StageError, match="reads stage 'extract', which is not published .*ns/r-extract"):
        plan_step(recipe, "filter", open_store(recipe.hub.store))


def test_published_dataset_loads_with_datasets(fake_hub, tmp_path, monkeypatch):
    """What users do on the Hub: `load_dataset(repo, revision=...)` reads both splits."""
    monkeypatch.setenv("HF_TOKEN", fake_hub.token)
    corpus = write_corpus(tmp_path / "corpus")
    args = ["--set", "name=loadable", "--set", "hub.store=hf", "--set", "hub.namespace=tester",
            "--set", "hub.private=false", "--set", f"work_dir={tmp_path / 'w'}",
            "--set", f"stages.extract.source={corpus}"]
    assert run_cli("run", TINY, "--only", "extract", *args) == 0
    revision = open_store("hf").resolve("tester/loadable-extract")
    from datasets import load_dataset

    train = load_dataset("tester/loadable-extract", revision=revision, split="train")
    rejected = load_dataset("tester/loadable-extract", "rejected", revision=revision, split="rejected")
    assert sorted(train["name"]) == ["area", "clamp", "fetch"]
    assert sorted(rejected["drop_reason"]) == ["duplicate", "syntax_error"]


def test_extract_streams_a_hub_corpus_and_a_store_corpus(fake_hub, tmp_path, monkeypatch):
    """A corpus on the Hub with The Stack's column names, streamed by `datasets`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    monkeypatch.setenv("HF_TOKEN", fake_hub.token)
    corpus = tmp_path / "corpus.parquet"
    pq.write_table(pa.Table.from_pylist([
        {"content": 'def inc(x):\n    """Add one."""\n    return x + 1\n',
         "max_stars_repo_path": "m.py", "max_stars_repo_name": "someone/repo",
         "max_stars_repo_licenses": ["MIT"]},
        {"content": "print 'python 2'\n", "max_stars_repo_path": "old.py",
         "max_stars_repo_name": "someone/old", "max_stars_repo_licenses": []},
    ]), corpus)
    hub = open_store("hf")
    hub.create_repo("tester/mini-stack", private=False)
    hub.commit("tester/mini-stack", {"data/python/train-00000-of-00001.parquet": corpus}, "corpus")
    args = ["--set", "name=fromhub", "--set", "hub.store=hf", "--set", "hub.namespace=tester",
            "--set", f"work_dir={tmp_path / 'w'}", "--set", "stages.extract.source=tester/mini-stack"]
    assert run_cli("run", TINY, "--only", "extract", *args) == 0
    rows = export_rows("hf", "tester/fromhub-extract", tmp_path)
    assert [(r["name"], r["repo"], r["license"]) for r in rows] == [("inc", "someone/repo", "MIT")]
    manifest = json.loads(hub.read_text("tester/fromhub-extract", "main", "manifest.json"))
    assert manifest["input"] == {"kind": "hub", "repo": "tester/mini-stack",
                                 "revision": hub.resolve("tester/mini-stack"), "data_dir": "data/python"}
    # The same corpus read as a dataset already in the store, pinned by revision.
    args[1] = "name=fromstore"
    args[-1] = f"stages.extract.source=store:tester/mini-stack@{hub.resolve('tester/mini-stack')}"
    assert run_cli("run", TINY, "--only", "extract", *args) == 0
    from_store = export_rows("hf", "tester/fromstore-extract", tmp_path)
    assert from_store[0]["source"].startswith("store:tester/mini-stack@")
    assert [{**r, "source": None} for r in from_store] == [{**r, "source": None} for r in rows]


def test_store_push_replays_local_history_on_the_hub_once(fake_hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", fake_hub.token)
    local = f"local:{tmp_path / 'offline'}"
    corpus = write_corpus(tmp_path / "corpus")
    args = ["--set", "name=offline", "--set", f"hub.store={local}", "--set", "hub.namespace=tester",
            "--set", f"work_dir={tmp_path / 'w'}", "--set", f"stages.extract.source={corpus}"]
    assert run_cli("run", TINY, "--only", "extract", *args) == 0
    assert run_cli("run", TINY, "--only", "extract", *args, "--set", "stages.extract.limit=2") == 0
    push = ["store", "push", "tester/offline-extract", "--store", local, "--to", "hf"]
    assert run_cli(*push) == 0
    hub, source = open_store("hf"), open_store(local)
    titles = [c.title for c in hub.log("tester/offline-extract")]
    assert titles[:2] == [c.title for c in source.log("tester/offline-extract")][:2]
    assert export_rows("hf", "tester/offline-extract", tmp_path / "h") == export_rows(
        local, "tester/offline-extract", tmp_path / "l")
    head = hub.resolve("tester/offline-extract")
    assert run_cli(*push) == 0  # nothing new: no commit
    assert hub.resolve("tester/offline-extract") == head


def test_run_without_only_skips_unimplemented_stages_and_what_they_feed(tmp_path, monkeypatch, caplog):
    from builder.pipeline.recipe import load_recipe
    from builder.pipeline.recipe_runner import select_stages
    from builder.registry import STEPS

    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text(
        f"name: r\nhub:\n  store: local:{tmp_path / 's'}\n  namespace: ns\nwork_dir: {tmp_path / 'w'}\n"
        f"stages:\n  extract:\n    source: {write_corpus(tmp_path / 'corpus')}\n"
        "  filter: {}\n  execute: {}\n  select:\n    input: extract\n"
    )
    monkeypatch.setattr(STEPS.load("filter"), "implemented", False)
    recipe = load_recipe(recipe_file)
    with caplog.at_level(logging.WARNING):
        assert select_stages(recipe, None) == ["extract", "select"]  # execute reads filter
    assert "skipping stages not implemented yet or fed by one: filter, execute" in caplog.text
    with pytest.raises(StageError, match="stage 'filter' is not implemented yet"):
        select_stages(recipe, ["extract", "filter"])


def test_two_first_publishes_of_one_stage_conflict(tmp_path):
    """Both runs planned before the repo existed: the second must not overwrite the first."""
    from builder.errors import CommitConflict
    from builder.pipeline.recipe import load_recipe
    from builder.pipeline.step_runner import plan_step, run_step

    corpus = write_corpus(tmp_path / "corpus")
    overrides = [f"hub.store=local:{tmp_path / 's'}", f"stages.extract.source={corpus}"]
    first = load_recipe(TINY, overrides + [f"work_dir={tmp_path / 'w1'}"])
    second = load_recipe(TINY, overrides + [f"work_dir={tmp_path / 'w2'}", "stages.extract.limit=2"])
    store = open_store(first.hub.store)
    plans = [plan_step(first, "extract", store), plan_step(second, "extract", store)]
    published = run_step(plans[0], first)
    with pytest.raises(CommitConflict):
        run_step(plans[1], second)
    assert store.resolve("local/tiny-extract") == published
