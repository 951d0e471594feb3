"""The engine interface and its local backends: `transformers` on the tiny model, and the
`vllm` adapter checked against a stand-in for vLLM's documented API (vLLM needs CUDA)."""

import sys
import types
from dataclasses import dataclass, field

import pytest

from builder.engines.base import Request, Sampling, cut_at_stop, open_engine
from builder.errors import BuilderError
from builder.pipeline.recipe import EngineConfig

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


# --- vllm: our adapter against a stand-in that records how vLLM's documented API is called ---


@dataclass
class FakeOutput:
    index: int
    text: str
    token_ids: list
    finish_reason: str


@dataclass
class FakeRequestOutput:
    request_id: str
    prompt_token_ids: list
    outputs: list
    finished: bool = True
    num_cached_tokens: int = 0


@dataclass
class FakeMetric:
    name: str
    value: float


@dataclass
class FakeLLMEngine:
    added: list = field(default_factory=list)
    queue: list = field(default_factory=list)
    aborted: list = field(default_factory=list)

    def add_request(self, request_id, prompt, params):
        if len(prompt) > 1000:
            raise ValueError(
                f"The decoder prompt (length {len(prompt)}) is longer than the maximum model length"
            )
        self.added.append((request_id, prompt, params))
        self.queue.append((request_id, prompt, params))

    def has_unfinished_requests(self):
        return bool(self.queue)

    def step(self):
        request_id, prompt, params = self.queue.pop()  # finish in reverse order of adding
        outputs = [
            FakeOutput(i, f"{prompt}|seed={params.kwargs['seed'] + i}## Ex"[:40], [1, 2], "stop")
            for i in reversed(range(params.kwargs["n"]))
        ]
        return [FakeRequestOutput(request_id, [0] * 7, outputs, num_cached_tokens=3)]

    def abort_request(self, ids):
        self.aborted += ids


class FakeLLM:
    last = None

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.llm_engine = FakeLLMEngine()
        FakeLLM.last = self

    def get_metrics(self):
        return [
            FakeMetric("vllm:prefix_cache_queries", 200.0),
            FakeMetric("vllm:prefix_cache_hits", 150.0),
        ]


class FakeSamplingParams:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


@pytest.fixture
def fake_vllm(monkeypatch):
    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = FakeLLM, FakeSamplingParams
    sampling_module = types.ModuleType("vllm.sampling_params")
    sampling_module.RequestOutputKind = types.SimpleNamespace(FINAL_ONLY="final-only")
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", sampling_module)


def test_vllm_adapter_calls_the_documented_api(fake_vllm, tmp_path):
    config = EngineConfig(
        backend="vllm", dtype="bfloat16", tensor_parallel_size=2, max_model_len=8192
    )
    engine = open_engine("vllm", "bigcode/starcoder2-15b", "abc123", config)
    llm_kwargs = FakeLLM.last.kwargs
    assert llm_kwargs["enable_prefix_caching"] is True
    assert llm_kwargs["revision"] == llm_kwargs["tokenizer_revision"] == "abc123"
    assert (
        llm_kwargs["tensor_parallel_size"],
        llm_kwargs["max_model_len"],
        llm_kwargs["dtype"],
    ) == (2, 8192, "bfloat16")

    sampling = Sampling(temperature=0.7, top_p=0.95, max_tokens=1536, stop=("## Example",))
    requests = [
        Request("p0", sampling, seed=10, n=3),
        Request("x" * 2000, sampling, seed=11, n=2),
        Request("p2", sampling, seed=20, n=2, first_index=5),
    ]
    results = run(engine, requests)
    added = FakeLLM.last.llm_engine.added
    assert len(added) == 2  # the too-long prompt was refused at once
    params = added[0][2].kwargs
    assert params == {
        "n": 3,
        "temperature": 0.7,
        "top_p": 0.95,
        "max_tokens": 1536,
        "stop": ["## Example"],
        "seed": 10,
        "output_kind": "final-only",
    }
    assert added[1][2].kwargs["seed"] == 25  # samples 5 and 6: seeds 25 and 26
    assert [c.text for c in results[0]] == ["p0|seed=10## Ex", "p0|seed=11## Ex", "p0|seed=12## Ex"]
    assert [c.error_kind for c in results[1]] == ["prompt_too_long"] * 2
    assert [c.output_tokens for c in results[2]] == [2, 2] and results[2][0].prompt_tokens == 7
    assert engine.refresh_metrics().prefix_cache_hit_rate() == 0.75


def test_vllm_adapter_aborts_what_is_left_when_interrupted(fake_vllm, tmp_path):
    engine = open_engine("vllm", str(tmp_path), "local-x", EngineConfig(backend="vllm"))
    assert "revision" not in FakeLLM.last.kwargs  # a local folder has no Hub revision

    def on_done(index, completions):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        engine.generate([Request("a", Sampling(), 1), Request("b", Sampling(), 2)], on_done)
    assert len(FakeLLM.last.llm_engine.aborted) == 1  # the request not yet finished
