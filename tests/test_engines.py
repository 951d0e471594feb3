"""The engine interface and the `transformers` backend on the tiny model (the `vllm` backend:
test_engines_vllm.py; `openai`: test_engines_openai.py)."""

import pytest

from builder.engines.base import Request, Sampling, cut_at_stop, open_engine
from builder.engines.config import EngineConfig
from builder.errors import BuilderError

PROMPT = 'def add(a, b):\n    """Return the sum of a and b."""\n    return'


def run(engine, requests):
    done = {}

    def on_done(index, completions):
        assert index not in done, "a request was reported twice"
        done[index] = completions

    engine.generate(requests, on_done)
    assert sorted(done) == list(range(len(requests)))
    return [done[i] for i in range(len(requests))]


@pytest.mark.parametrize(
    "text, stop, expected",
    [
        ("abc## Example 3", ("## Example",), ("abc", True)),
        ("abc", ("## Example",), ("abc", False)),
        ("x\nyz", ("z", "\n"), ("x", True)),  # the earliest stop string wins
        ("", ("a",), ("", False)),
        ("abc", ("",), ("abc", False)),
    ],
)
def test_cut_at_stop(text, stop, expected):
    assert cut_at_stop(text, stop) == expected


def test_unknown_backend_is_a_one_line_error():
    with pytest.raises(BuilderError, match="unknown engine.backend 'tgi'"):
        open_engine("tgi", "m", None, EngineConfig())


@pytest.fixture(scope="module")
def tiny_engine(tiny_model):
    engine = open_engine(
        "transformers", str(tiny_model), None, EngineConfig(batch_size=4, cpu_threads=1)
    )
    yield engine
    engine.close()


def test_transformers_samples_limits_and_stops(tiny_engine):
    sampled = Sampling(temperature=1.0, top_p=1.0, max_tokens=12, stop=("e", "t", "a"))
    plain = Sampling(temperature=1.0, max_tokens=5)
    requests = [
        Request(PROMPT, sampled, seed=1, n=3),
        Request(PROMPT + " a", sampled, seed=2, n=2),
        Request(PROMPT, plain, seed=3, n=4),
    ]
    results = run(tiny_engine, requests)
    assert [len(r) for r in results] == [3, 2, 4]
    stopped = [c for r in results[:2] for c in r]
    assert all(not any(s in c.text for s in "eta") for c in stopped)  # cut before the stop
    assert all(c.output_tokens <= 12 and c.prompt_tokens > 0 for c in stopped)
    assert any(c.finish_reason == "stop" and c.output_tokens < 12 for c in stopped)
    for completion in results[2]:
        assert completion.output_tokens <= 5
        assert completion.finish_reason == "stop" or completion.output_tokens == 5
    assert sum(c.finish_reason == "length" for c in results[2]) >= 3  # noise rarely ends early
    assert tiny_engine.metrics.output_tokens >= sum(c.output_tokens for r in results for c in r)


def test_transformers_greedy_is_deterministic_and_seeds_repeat(tiny_engine):
    greedy = Sampling(temperature=0.0, max_tokens=8)
    first, second = run(tiny_engine, [Request(PROMPT, greedy, 0), Request(PROMPT, greedy, 99)])
    assert first[0].text == second[0].text  # greedy ignores the seed
    sampled = Sampling(temperature=1.0, max_tokens=8)
    again = [run(tiny_engine, [Request(PROMPT, sampled, seed=5, n=2)])[0] for _ in range(2)]
    assert [c.text for c in again[0]] == [c.text for c in again[1]]


def test_transformers_prompt_too_long_fails_alone(tiny_model):
    engine = open_engine(
        "transformers", str(tiny_model), None, EngineConfig(max_model_len=24, cpu_threads=1)
    )
    greedy = Sampling(max_tokens=4)
    long_one, short_one = run(
        engine, [Request(PROMPT * 10, greedy, 0, n=2), Request("x = 1", greedy, 0)]
    )
    assert [c.error_kind for c in long_one] == ["prompt_too_long"] * 2
    assert all(not c.ok and "does not fit" in c.error for c in long_one)
    assert short_one[0].ok and short_one[0].output_tokens <= 4
