"""A Hub that stalls or fails (tests/fake_hub.py faults): every call ends, after bounded
retries, in one line; a commit is made once or not at all, and the rerun publishes once."""

import logging
import time
import types
from collections import Counter

import pytest

from builder.store import open_store
from builder.store.hub_calls import Limits, install_timeouts
from tests.helpers import TINY, export_rows, run_cli, write_corpus


@pytest.fixture
def hub(fake_hub, monkeypatch):
    """The fake Hub with short limits: 0.5 s without an answer is a timeout, 3 tries, no
    waiting between them (nor in huggingface_hub's own retries of uploads and downloads)."""
    from huggingface_hub.utils import _http

    monkeypatch.setattr(_http, "time", types.SimpleNamespace(sleep=lambda s: None, time=time.time))
    monkeypatch.setenv("HF_TOKEN", fake_hub.token)
    monkeypatch.setenv("BUILDER_HUB_TIMEOUT", "0.5")
    monkeypatch.setenv("BUILDER_HUB_ATTEMPTS", "3")
    monkeypatch.setenv("BUILDER_HUB_RETRY_WAIT", "0")
    yield fake_hub
    fake_hub.clear_faults()  # stalled requests end; their clients have gone
    install_timeouts(Limits().timeout)  # the shared client's default again, for later tests


def run_args(name, tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    # A function of its own, so that this run's shards are new to the session's fake Hub
    # (which, like the Hub, stores a file once and never asks for it twice).
    own = f'def {name}(x):\n    """Unique to {tmp_path.name}."""\n    return x\n'
    (corpus / "own.py").write_text(own)
    return ["--set", f"name={name}", "--set", "hub.store=hf", "--set", "hub.namespace=tester",
            "--set", f"work_dir={tmp_path / 'work'}", "--set", f"stages.extract.source={corpus}",
            "--set", "stages.extract.num_proc=1"]  # fmt: skip


def commit_fault(hub, name, action, tmp_path):
    """Recipe arguments for stage `extract` of recipe `name`, its repository, and a fault on
    that repository's commits."""
    repo = f"tester/{name}-extract"
    return (
        run_args(name, tmp_path),
        repo,
        hub.fault("POST", rf"/api/datasets/{repo}/commit/", action),
    )


def error_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_hub_that_never_answers_a_commit_is_one_line_and_nothing_is_published(
    hub, tmp_path, caplog
):
    args, repo, fault = commit_fault(hub, "stalled", "stall", tmp_path)
    with caplog.at_level(logging.WARNING):
        assert run_cli("run", TINY, "--only", "extract", *args) == 2
    assert fault.hits == 3  # bounded: three tries, then the error
    errors = error_lines(caplog)
    assert len(errors) == 1 and "\n" not in errors[0]
    assert "the Hub did not answer within 0.5 s" in errors[0] and "tried 3 times" in errors[0]
    assert f"nothing was published to {repo}@main" in errors[0]
    assert "trying again" in caplog.text  # the wait is not silent
    assert len(open_store("hf").log(repo)) == 1  # only the repository's initial commit
    hub.clear_faults()
    assert run_cli("run", TINY, "--only", "extract", *args) == 0
    assert len(open_store("hf").log(repo)) == 2
    assert len(export_rows("hf", repo, tmp_path)) == 4  # area, clamp, fetch and its own


def test_a_commit_made_whose_answer_never_came_is_found_not_made_twice(hub, tmp_path, caplog):
    args, repo, fault = commit_fault(hub, "unanswered", "stall-after", tmp_path)
    with caplog.at_level(logging.INFO):
        assert run_cli("run", TINY, "--only", "extract", *args) == 0
    assert fault.hits == 1 and "the commit was made despite" in caplog.text
    history = open_store("hf").log(repo)
    assert len(history) == 2 and "publish-id: " in history[0].message
    assert run_cli("run", TINY, "--only", "extract", *args) == 0  # up to date: nothing new
    assert len(open_store("hf").log(repo)) == 2


def test_server_errors_are_retried_a_bounded_number_of_times(hub, tmp_path, caplog):
    hub_store = open_store("hf")
    hub_store.create_repo("tester/flaky", private=False)
    (tmp_path / "a.txt").write_text("a\n")
    head = hub_store.resolve("tester/flaky")
    hub.fault("POST", r"/api/datasets/tester/flaky/commit/", "503", times=2)
    commit = hub_store.commit(
        "tester/flaky", {"a.txt": tmp_path / "a.txt"}, "third try", parent=head
    )
    assert [c.id for c in hub_store.log("tester/flaky")][:2] == [commit, head]
    hub.fault("GET", r"/api/datasets/tester/flaky/revision/", "500")
    with pytest.raises(Exception) as raised:
        hub_store.resolve("tester/flaky")
    message = str(raised.value)
    assert "tester/flaky" in message and "500" in message and "tried 3 times" in message
    assert "\n" not in message


def test_a_failed_upload_is_one_line_after_its_retries(hub, tmp_path, caplog):
    args = run_args("upload", tmp_path)
    repo = "tester/upload-extract"
    hub.fault("PUT", r"^/_lfs/", "500")
    hub.calls.clear()
    assert run_cli("run", TINY, "--only", "extract", *args) == 2
    errors = error_lines(caplog)
    assert len(errors) == 1 and "\n" not in errors[0], errors
    assert "Error while uploading" in errors[0] and "500" in errors[0] and repo in errors[0]
    assert f"nothing was published to {repo}@main" in errors[0]
    uploads = Counter(c for c in hub.calls if c.startswith("PUT /_lfs/"))
    assert uploads and set(uploads.values()) == {6}  # huggingface_hub's 6 tries, not again ours
    assert len(open_store("hf").log(repo)) == 1
    hub.clear_faults()
    assert run_cli("run", TINY, "--only", "extract", *args) == 0
    assert len(open_store("hf").log(repo)) == 2


def test_every_kind_of_hub_call_has_a_timeout(hub, tmp_path):
    """Reads too: a stalled `resolve`, `log`, or download is one line, not a hang."""
    hub_store = open_store("hf")
    hub_store.create_repo("tester/slow-reads", private=False)
    (tmp_path / "f.txt").write_text("f\n")
    revision = hub_store.commit("tester/slow-reads", {"f.txt": tmp_path / "f.txt"}, "f")
    calls = {
        "resolve": (r"/revision/", lambda: hub_store.resolve("tester/slow-reads")),
        "log": (r"/commits/", lambda: hub_store.log("tester/slow-reads")),
        "fetch": (r"/resolve/", lambda: hub_store.fetch("tester/slow-reads", revision, ["f.txt"])),
    }
    for what, (pattern, call) in calls.items():
        hub.fault("GET", pattern, "stall")
        hub.fault("HEAD", pattern, "stall")
        with pytest.raises(Exception) as raised:
            call()
        message = str(raised.value)
        assert "tester/slow-reads" in message and "\n" not in message, (what, message)
        assert "did not answer" in message or "cannot download" in message, (what, message)
        hub.clear_faults()


def test_a_rate_limited_commit_waits_as_the_hub_asks_and_publishes_once(
    hub, tmp_path, caplog, monkeypatch
):
    """The Hub limits commits per repository (HTTP 429 with Retry-After): a long run pushing
    every checkpoint must wait, not fail. Five 429s are more than the 3 tries of other errors."""
    from builder.store import hub_calls

    slept = []
    monkeypatch.setattr(
        hub_calls, "time", types.SimpleNamespace(sleep=slept.append, time=time.time)
    )
    args, repo, fault = commit_fault(hub, "limited", "429:7", tmp_path)
    fault.times = 5
    with caplog.at_level(logging.WARNING):
        assert run_cli("run", TINY, "--only", "extract", *args) == 0
    assert fault.hits == 5 and slept.count(7.0) == 5
    assert len(open_store("hf").log(repo)) == 2  # created, then published once
    assert any("the Hub asks to wait 7 s" in r.getMessage() for r in caplog.records)


def test_a_rate_limit_longer_than_the_wait_allowed_is_one_line(hub, tmp_path, caplog, monkeypatch):
    from builder.store import hub_calls

    monkeypatch.setattr(
        hub_calls, "time", types.SimpleNamespace(sleep=lambda s: None, time=time.time)
    )
    monkeypatch.setenv("BUILDER_HUB_MAX_WAIT", "10")
    args, repo, fault = commit_fault(hub, "limited-long", "429:60", tmp_path)
    assert run_cli("run", TINY, "--only", "extract", *args) == 2
    assert fault.hits == 3  # not waited: three tries, as for any other error
    errors = error_lines(caplog)
    assert (
        len(errors) == 1
        and "429 Too Many Requests" in errors[0]
        and "nothing was published" in errors[0]
    )
