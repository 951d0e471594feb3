"""What a run does with inputs a real model brings: a step that keeps nothing stops the run,
loudly; a GGUF file that is damaged, or a model without a chat template under `prompting:
chat`, is one line naming it; `prompting` takes only its two values. On the tiny model."""

import json
import logging

import pytest

from builder.engines.gguf import materialize
from builder.errors import StageError
from builder.store import open_store
from tests.helpers import TINY, run_cli, write_corpus


def _args(tmp_path, tiny_model, name):
    return [
        "--set", f"name={name}", "--set", f"hub.store=local:{tmp_path / 'store'}",
        "--set", "hub.namespace=tester", "--set", f"work_dir={tmp_path / 'work'}",
        "--set", f"model={tiny_model}", "--set", "engine.cpu_threads=1",
        "--set", f"stages.extract.source={write_corpus(tmp_path / 'corpus')}",
    ]  # fmt: skip


def _errors(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_step_that_keeps_nothing_stops_the_run_naming_it(tiny_model, tmp_path, caplog):
    args = _args(tmp_path, tiny_model, "empty")
    with caplog.at_level(logging.ERROR):
        code = run_cli(
            "run", TINY, *args, "--set", "stages.filter.max_lines=1",
            "--only", "extract,filter,imports",
        )  # fmt: skip
    assert code == 2
    (error,) = _errors(caplog)
    assert error.startswith("filter kept none of its 3 rows (tester/empty-filter@")
    assert "too_long: 3" in error and "the steps after it were not run" in error
    store = open_store(f"local:{tmp_path / 'store'}")
    assert store.repo_exists("tester/empty-filter")  # published: its drops can be read
    assert not store.repo_exists("tester/empty-imports")
    caplog.clear()
    with caplog.at_level(logging.ERROR):  # a rerun stops at the same place, publishing nothing
        assert run_cli("run", TINY, *args, "--set", "stages.filter.max_lines=1",
                       "--only", "extract,filter,imports") == 2  # fmt: skip
    assert "filter kept none" in _errors(caplog)[0]
    assert not store.repo_exists("tester/empty-imports")


def test_a_step_that_keeps_a_small_share_is_warned_about(tiny_model, tmp_path, caplog):
    args = _args(tmp_path, tiny_model, "few")
    with caplog.at_level(logging.WARNING):
        code = run_cli("run", TINY, *args, "--set", "keep_warning=0.9", "--only", "extract")
    assert code == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(w.startswith("extract kept 3 of 5 rows (60.0%, below keep_warning 90.0%)")
               for w in warnings), warnings  # fmt: skip


def test_chat_prompting_without_a_chat_template_is_one_line(tiny_model, tmp_path, caplog):
    args = _args(tmp_path, tiny_model, "chat")
    assert run_cli("run", TINY, *args, "--only", "extract") == 0
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        code = run_cli("run", TINY, *args, "--set", "prompting=chat",
                       "--set", "stages.judge.input=extract", "--only", "judge")  # fmt: skip
    assert code == 2
    (error,) = _errors(caplog)
    assert "has no chat template" in error and "prompting: completion" in error
    assert "\n" not in error


def test_prompting_takes_only_its_two_values(tmp_path, caplog):
    with caplog.at_level(logging.ERROR):
        assert run_cli("run", TINY, "--set", "prompting=instruct") == 2
    (error,) = _errors(caplog)
    assert "'prompting' must be 'completion' or 'chat', got 'instruct'" in error


@pytest.mark.parametrize(
    "content, message",
    [
        (b"not a gguf file at all", "is not a GGUF file"),
        (b"GGUF\x03\x00\x00\x00" + b"\x00" * 64, "cannot read this GGUF file"),
    ],
)
def test_a_damaged_gguf_file_is_one_line_naming_it(tmp_path, content, message):
    bad = tmp_path / "broken.Q4_1.gguf"
    bad.write_bytes(content)
    with pytest.raises(StageError) as caught:
        materialize(bad, tmp_path / "work")
    text = str(caught.value)
    assert "broken.Q4_1.gguf" in text and message in text and "\n" not in text
    assert not list((tmp_path / "work" / "models").glob("*"))  # no half-made folder left
    missing = tmp_path / "nowhere.gguf"
    with pytest.raises(StageError, match="no such GGUF file"):
        materialize(missing, tmp_path / "work")


def test_a_gguf_model_is_converted_once_and_named_by_its_hash(tmp_path, monkeypatch):
    """The conversion itself runs on the real file in test_real_model.py; here, that a second
    resolve reuses the folder, and what the lineage records."""
    from builder.engines import gguf, model

    calls = []

    def fake_convert(path, out):
        calls.append(path)
        out.mkdir(parents=True)
        (out / "config.json").write_text("{}")
        return {"name": "Tiny", "organization": "Org"}

    monkeypatch.setattr(gguf, "_convert", fake_convert)
    weights = tmp_path / "tiny.Q8_0.gguf"
    weights.write_bytes(b"GGUF" + b"\x01" * 100)
    first = model.resolve_model(str(weights), None, tmp_path / "work", "org/tiny")
    second = model.resolve_model(str(weights), None, tmp_path / "work", "org/tiny")
    assert len(calls) == 1 and first == second
    assert first.revision.startswith("gguf-") and len(first.revision) == 5 + 16
    assert first.source["base_model"] == "org/tiny" and first.source["file"] == weights.name
    assert json.loads((tmp_path / "work" / "models" / f"tiny.Q8_0-{first.source['sha256'][:12]}"
                       / "gguf_source.json").read_text())["metadata"]["name"] == "Tiny"  # fmt: skip
    assert model.public_name(str(weights)) == "tiny.Q8_0.gguf"
