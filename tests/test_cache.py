"""The completion cache: keys, durability, several writers, and asking only for what is missing."""

import multiprocessing
import sqlite3
from typing import ClassVar

import pytest

from builder.engines import base
from builder.engines.base import Completion, Engine, Sampling
from builder.engines.cache import CompletionCache, request_key
from builder.engines.config import EngineConfig
from builder.engines.generator import EngineSpec, Generator, PromptSpec

SAMPLING = Sampling(temperature=0.7, top_p=0.95, max_tokens=64, stop=("## Example",))


def test_key_changes_with_every_part_of_the_identity():
    key = request_key("m", "r1", "prompt", SAMPLING, 5)
    assert key == request_key("m", "r1", "prompt", Sampling(0.7, 0.95, 64, ("## Example",)), 5)
    variants = [
        request_key("m2", "r1", "prompt", SAMPLING, 5),
        request_key("m", "r2", "prompt", SAMPLING, 5),
        request_key("m", "r1", "prompt ", SAMPLING, 5),
        request_key("m", "r1", "prompt", Sampling(0.8, 0.95, 64, ("## Example",)), 5),
        request_key("m", "r1", "prompt", Sampling(0.7, 1.0, 64, ("## Example",)), 5),
        request_key("m", "r1", "prompt", Sampling(0.7, 0.95, 65, ("## Example",)), 5),
        request_key("m", "r1", "prompt", Sampling(0.7, 0.95, 64, ("##",)), 5),
        request_key("m", "r1", "prompt", SAMPLING, 6),
    ]
    assert len(set(variants) | {key}) == len(variants) + 1


def test_put_get_survives_reopening_and_keeps_the_first_write(tmp_path):
    path = tmp_path / "cache.sqlite"
    with CompletionCache(path) as cache:
        stored = cache.put(
            "k",
            {
                0: Completion("a", "stop", 3, 10),
                1: Completion("b", "length", 64, 10),
                2: base.error_completion("request_failed", "bad"),
            },
            "m",
        )
        assert stored == 2  # the failed request is not cached: a rerun asks again
        cache.put("k", {0: Completion("other", "stop", 1, 10)}, "m")
    with CompletionCache(path) as cache:
        got = cache.get("k", range(5))
        assert sorted(got) == [0, 1]
        assert (got[0].text, got[0].finish_reason, got[0].output_tokens) == ("a", "stop", 3)
        assert got[1].finish_reason == "length" and cache.count() == 2 and cache.count("m") == 2
        assert cache.get("k", []) == {} and cache.get("nope", range(3)) == {}
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def _writer(path: str, worker: int, rows: int) -> None:
    with CompletionCache(path) as cache:
        for i in range(rows):
            cache.put(
                f"key-{i % 50}", {worker * 1000 + i: Completion(f"w{worker}-{i}", "stop")}, "m"
            )


def test_several_processes_write_at_once(tmp_path):
    path = str(tmp_path / "shared.sqlite")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(path, w, 150)) for w in range(3)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=120)
        assert process.exitcode == 0
    with CompletionCache(path) as cache:
        assert cache.count() == 450


class RecordingEngine(Engine):
    """Answers every sample with its own identity and records what it was asked."""

    backend = "recording"
    opened: ClassVar[int] = 0
    asked: ClassVar[list] = []

    def __init__(self, model, revision, config):
        super().__init__(model, revision, config)
        RecordingEngine.opened += 1

    def _generate(self, requests, on_done):
        for index, request in enumerate(requests):
            RecordingEngine.asked.append(
                (request.prompt, request.first_index, request.n, request.seed)
            )
            on_done(
                index, [Completion(f"{request.prompt}#{i}", "stop", 1, 1) for i in request.indices]
            )


@pytest.fixture
def recording(monkeypatch):
    monkeypatch.setitem(base.BACKENDS, "recording", "tests.test_cache:RecordingEngine")
    RecordingEngine.opened, RecordingEngine.asked = 0, []
    return EngineSpec("recording", "m", "r1", EngineConfig(backend="recording"))


def test_generator_asks_only_for_missing_samples(recording, tmp_path):
    cache = CompletionCache(tmp_path / "c.sqlite")
    generator = Generator(recording, cache)
    prompts = [PromptSpec("p1", 3, 100), PromptSpec("p2", 3, 200)]
    results, counts = generator.generate(prompts, SAMPLING)
    assert [[c.text for c in r] for r in results] == [
        ["p1#0", "p1#1", "p1#2"],
        ["p2#0", "p2#1", "p2#2"],
    ]
    assert (counts.hits, counts.misses, counts.stored) == (0, 6, 6)
    assert RecordingEngine.asked == [("p1", 0, 3, 100), ("p2", 0, 3, 200)]  # one request per prompt

    # The same again, by a new generator: all cached, and the engine is not even opened.
    RecordingEngine.opened, RecordingEngine.asked = 0, []
    results_again, counts = Generator(recording, cache).generate(prompts, SAMPLING)
    assert (counts.hits, counts.misses) == (6, 0) and RecordingEngine.opened == 0
    assert [[c.text for c in r] for r in results_again] == [[c.text for c in r] for r in results]

    # n raised from 3 to 5: only samples 3 and 4 are asked for, with the seed of sample 0
    # (sample i's seed is seed + i, whatever request it comes from).
    results, counts = Generator(recording, cache).generate([PromptSpec("p1", 5, 100)], SAMPLING)
    assert (counts.hits, counts.misses) == (3, 2)
    assert RecordingEngine.asked == [("p1", 3, 2, 100)]
    assert [c.text for c in results[0]] == ["p1#0", "p1#1", "p1#2", "p1#3", "p1#4"]

    # A changed sampling parameter is a different request.
    _, counts = Generator(recording, cache).generate(
        [PromptSpec("p1", 1, 100)], Sampling(0.0, 1.0, 64, ())
    )
    assert (counts.hits, counts.misses) == (0, 1)
    cache.close()


def test_a_hole_in_the_samples_is_filled_alone(recording, tmp_path):
    cache = CompletionCache(tmp_path / "c.sqlite")
    key = request_key("m", "r1", "p", SAMPLING, 9)
    cache.put(key, {0: Completion("kept0", "stop"), 2: Completion("kept2", "stop")}, "m")
    results, counts = Generator(recording, cache).generate([PromptSpec("p", 4, 9)], SAMPLING)
    assert RecordingEngine.asked == [("p", 1, 1, 9), ("p", 3, 1, 9)]
    assert [c.text for c in results[0]] == ["kept0", "p#1", "kept2", "p#3"]
    assert (counts.hits, counts.misses) == (2, 2)
    cache.close()


def test_both_caches_make_their_folders_and_reopen_what_they_stored(tmp_path):
    """A first run on a new work folder: no folder for the caches exists yet."""
    from builder.sandbox.verdict_cache import VerdictCache

    completions = tmp_path / "new" / "cache" / "completions.sqlite"
    with CompletionCache(completions) as cache:
        assert cache.count() == 0
    with CompletionCache(completions) as cache:
        assert cache.count() == 0
    verdicts = tmp_path / "other" / "cache" / "execute.sqlite"
    cache = VerdictCache(verdicts)
    verdict = {"status": "pass", "duration_s": 0.1, "stdout": "", "stderr": "", "exit_code": 0,
               "error": ""}  # fmt: skip
    cache.put_many({"k": verdict})
    cache.close()
    assert VerdictCache(verdicts).get_many(["k", "other"])["k"]["status"] == "pass"
