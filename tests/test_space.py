"""The Space: its readers (pages by row group, search, provenance), and its API through
`gradio_client` on a small store built on the spot (`tests/space_store.py`)."""

from __future__ import annotations

import html
import itertools
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from builder.pipeline.publish import publish
from builder.pipeline.recipe import load_recipe
from builder.pipeline.shards import ShardWriter
from builder.registry import STEPS
from builder.store import open_store
from tests import space_store
from tests.fake_hub import free_port
from tests.helpers import ROOT, TINY, export_rows, head_manifest

pytest.importorskip("gradio")
sys.path.insert(0, str(ROOT / "spaces"))

from space_app.config import config_from_recipe
from space_app.pages import SplitPages


def numbered_rows(count: int) -> list[dict]:
    return [
        {"n": i, "text": f"row {i}" + (" needle" if i % 700 == 3 else ""), "tag": None}
        for i in range(count)
    ]


def publish_split(store, repo: str, rows: list[dict], tmp_path: Path) -> str:
    folder = tmp_path / repo.replace("/", "--")
    writer = ShardWriter(folder, "train", rows_per_shard=2000)  # 3 shards, row groups of 1,000
    for row in rows:
        writer.write(row)
    files = writer.finish()
    manifest = {
        "kind": "dataset",
        "splits": {
            "train": {"rows": len(rows), "files": [str(f.relative_to(folder)) for f in files]}
        },
    }
    return publish(store, repo, folder, manifest, "card", "rows")


def test_a_page_reads_only_the_row_groups_that_hold_it(tmp_path, monkeypatch):
    store = open_store(f"local:{tmp_path / 'store'}")
    rows = numbered_rows(5500)
    commit = publish_split(store, "t/pages", rows, tmp_path)
    pages = SplitPages(store, "t/pages", commit, "train", _manifest(store, "t/pages"))
    assert (
        pages.num_rows == 5500 and len(pages.groups) == 6 and pages.columns == ["n", "text", "tag"]
    )
    read = []
    original = SplitPages._read_group
    monkeypatch.setattr(
        SplitPages, "_read_group", lambda self, p, c=None: read.append(p) or original(self, p, c)
    )
    page = pages.rows(2990, 20)  # across the row group (and shard) boundary at 3,000
    assert [i for i, _ in page] == list(range(2990, 3010))
    assert [r for _, r in page] == rows[2990:3010]
    assert read == [2, 3]
    assert [i for i, _ in pages.rows(5490, 20)] == list(range(5490, 5500))  # the last page is short
    assert pages.find("n", 4321) == (4321, rows[4321])
    assert pages.find("n", 99999) is None


def test_search_pages_continue_where_the_last_stopped_and_find_every_match(tmp_path):
    store = open_store(f"local:{tmp_path / 'store'}")
    rows = numbered_rows(5500)
    commit = publish_split(store, "t/search", rows, tmp_path)
    pages = SplitPages(store, "t/search", commit, "train", _manifest(store, "t/search"))
    expected = [i for i, r in enumerate(rows) if "NEEDLE" in r["text"].upper()]
    found, start = [], 0
    while start is not None:
        result = pages.search("NeEdLe", None, start, want=3)
        assert len(result.rows) <= 3
        found += [i for i, _ in result.rows]
        start = result.next_row
    assert found == expected
    assert pages.search("row 12", ["tag"]).rows == []  # a column with no text


def test_a_page_on_the_hub_is_read_by_ranges_without_downloading_the_shard(
    fake_hub, monkeypatch, tmp_path
):
    monkeypatch.setenv("HF_TOKEN", fake_hub.token)
    store = open_store("hf")
    rows = numbered_rows(4200)
    commit = publish_split(store, "tester/space-pages", rows, tmp_path)
    pages = SplitPages(
        store, "tester/space-pages", commit, "train", _manifest(store, "tester/space-pages")
    )
    assert [r for _, r in pages.rows(3995, 10)] == rows[3995:4005]
    cache = Path(__import__("os").environ["HF_HUB_CACHE"])  # shared by the session's tests
    downloaded = list(cache.glob("datasets--tester--space-pages/**/*.parquet"))
    assert not downloaded, "a page must not download the shards"


def _manifest(store, repo):
    return head_manifest(store, repo)


# -- the app, through its API -------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tiny_model, tmp_path_factory):
    """(url, facts, root): the app on the test store, served in this process."""
    from space_app.ui import build_app

    root = tmp_path_factory.mktemp("space")
    facts = space_store.build(root, tiny_model)
    # One more model offered in the chat that does not load (a folder that is not there).
    config = config_from_recipe(
        load_recipe(TINY, facts["overrides"]), models=[str(root / "no-such-model")]
    )
    demo = build_app(config)
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/", facts, root
    finally:
        demo.close()


@pytest.fixture
def space(served):
    """(client, facts, root), the client a new session: a chat's history is per session."""
    from gradio_client import Client

    url, facts, root = served
    return Client(url, verbose=False), facts, root


def direct_greedy(model_dir: Path, prompt: str, max_new_tokens: int) -> str:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    out = model.generate(
        **ids, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
    )
    return tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)


def test_chat_streams_the_checkpoints_answer_with_its_own_chat_template(space, tiny_model):
    client, _, _ = space
    job = client.submit(
        "Write a function that adds two numbers.",
        "store:local/tiny-train@main",
        0.0,
        24,
        "",
        "",
        "",
        "",
        api_name="/chat",
    )
    parts = [text for text, _ in job]
    text, status = job.result()
    assert len(parts) > 2 and parts[-1] == text
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(parts))
    assert "local/tiny-train@main on cpu" in status and "no chat template" not in status
    prompt = "<|user|>Write a function that adds two numbers.\n<|assistant|>"  # CHAT_TEMPLATE's
    assert text == direct_greedy(tiny_model, prompt, 24)


def test_chat_with_a_prefix_continues_it_and_without_a_template_uses_the_fallback(
    space, tiny_model
):
    client, _, _ = space
    prefix = "Here is a Python function:\n```python\n"
    text, status = client.predict(
        "Add two numbers.", f"model:{tiny_model}", 0.0, 16, prefix, "", "", "", api_name="/chat"
    )
    assert "no chat template" in status
    fallback = (ROOT / "spaces/space_app/fallback_chat_template.jinja").read_text()
    from transformers import AutoTokenizer

    prompt = AutoTokenizer.from_pretrained(tiny_model).apply_chat_template(
        [{"role": "user", "content": "Add two numbers."}],
        chat_template=fallback,
        tokenize=False,
        add_generation_prompt=True,
    )
    assert prompt.endswith("### Instruction\nAdd two numbers.\n\n### Response\n")
    assert text == prefix + direct_greedy(tiny_model, prompt + prefix, 16)


def test_chat_errors_are_one_line_and_the_chat_goes_on(space):
    from gradio_client.exceptions import AppError

    client, facts, root = space
    broken = f"model:{root / 'no-such-model'}"  # offered (serve --model), but not there
    with pytest.raises(AppError) as failure:
        client.predict("hi", broken, 0.0, 8, "", "", "", "", api_name="/chat")
    assert f"model {root / 'no-such-model'} does not load" in str(failure.value)
    dead = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(AppError) as failure:
        client.predict("hi", "", 0.0, 8, "", dead, "m", "", api_name="/chat")
    message = str(failure.value)
    assert f"the endpoint {dead} does not answer" in message and "Traceback" not in message
    text, _ = client.predict(
        "hi", "store:local/tiny-train@step-000001", 0.0, 4, "", "", "", "", api_name="/chat"
    )
    assert isinstance(text, str)


class _FakeOpenAI(BaseHTTPRequestHandler):
    """An OpenAI-compatible server that streams a fixed answer in three chunks."""

    requests: ClassVar[list[dict]] = []
    auth: ClassVar[list[str | None]] = []  # the Authorization header of each request

    def do_GET(self):
        type(self).auth.append(self.headers.get("Authorization"))
        self._send(
            "application/json",
            json.dumps(
                {
                    "object": "list",
                    "data": [
                        {"id": "served-model", "object": "model", "created": 0, "owned_by": "test"}
                    ],
                }
            ).encode(),
        )

    def do_POST(self):
        type(self).auth.append(self.headers.get("Authorization"))
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        chunks = [
            {
                "id": "c",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": body["model"],
                "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
            }
            for piece in ("def add", "(a, b):", " return a + b")
        ]
        self._send(
            "text/event-stream",
            b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks) + b"data: [DONE]\n\n",
        )

    def _send(self, kind: str, data: bytes):
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_chat_through_an_openai_compatible_endpoint(space):
    client, _, _ = space
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeOpenAI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/v1"
    answer = "def add(a, b): return a + b"
    try:
        job = client.submit("add", "", 0.3, 64, "", url, "", "", api_name="/chat")
        parts = [text for text, _ in job]
        job = client.submit(
            "again", "", 0.3, 64, "```python\n", url, "served-model", "", api_name="/chat"
        )
        prefixed = job.result()[0]
    finally:
        server.shutdown()
    assert parts == ["def add", "def add(a, b):", answer]
    first, second = _FakeOpenAI.requests[-2:]
    assert first["model"] == "served-model" and first["stream"] and first["max_tokens"] == 64
    assert first["messages"] == [{"role": "user", "content": "add"}]
    assert first["temperature"] == 0.3 and "continue_final_message" not in first
    assert second["messages"] == [  # the session's history, then the prefix to continue
        {"role": "user", "content": "add"},
        {"role": "assistant", "content": answer},
        {"role": "user", "content": "again"},
        {"role": "assistant", "content": "```python\n"},
    ]
    assert second["continue_final_message"] is True
    assert prefixed == "```python\ndef add(a, b): return a + b"


def test_evaluation_shows_every_evaluated_revision_by_step_beside_the_references(space):
    client, _, _ = space
    table, points, chooser, status = client.predict(api_name="/evaluation")
    rows = {r[0]: r for r in table["data"]}
    headers = table["headers"]
    assert headers[:8] == [
        "model",
        "step",
        "HumanEval",
        "HumanEval+",
        "MBPP",
        "MBPP+",
        "LiveCodeBench",
        "DS-1000",
    ]
    for name, scores in space_store.SCORES.items():
        label = next(
            k for k in rows if k.endswith(name) or (name == "base" and k.startswith("base:"))
        )
        assert rows[label][2:4] == [100 * scores["base"], 100 * scores["plus"]]
        assert rows[label][1] == space_store.STEPS[name]
    assert rows["StarCoder2-15B-Instruct-v0.1 (published)"][2:8] == [
        72.6,
        63.4,
        75.2,
        61.2,
        20.4,
        40.6,
    ]
    assert sorted(map(tuple, points["data"])) == sorted(
        (step, 100 * s[key], column)
        for step, s in zip(space_store.STEPS.values(), space_store.SCORES.values())
        for column, key in (("HumanEval", "base"), ("HumanEval+", "plus"))
    )
    assert status.startswith("4 evaluated revisions (4 at a training step)")
    result = chooser["choices"][-1][1]
    (configs, _) = client.predict(result, api_name="/eval_benchmarks")
    assert configs["value"] == "humaneval_plus"
    samples, _ = client.predict(result, "humaneval_plus", api_name="/eval_samples")
    assert [r[1:] for r in samples["data"]] == [
        ["HumanEval/0", 0, "base fail, plus not run"],
        ["HumanEval/1", 0, "base pass, plus pass"],
    ]
    detail, _ = client.predict(result, "humaneval_plus", 1, api_name="/eval_sample")
    assert "def task_1():\n    return 1" in detail and "base pass, plus pass" in detail


def test_funnel_and_pages_show_what_the_store_holds(space):
    client, facts, root = space
    table, _, status = client.predict(api_name="/funnel")
    by_stage = {r[0]: r for r in table["data"]}
    recipe = load_recipe(TINY)
    datasets = [n for n in recipe.stage_names() if STEPS.load(n).kind == "dataset"]
    assert list(by_stage) == datasets  # every dataset step, in the recipe's order
    assert by_stage["extract"][1:5] == [4, 3, 2, "duplicate: 1, syntax_error: 1"]
    assert by_stage["instructions"][1:5] == [3, 2, 1, "too_short: 1"]
    assert by_stage["filter"][4] == "not published yet"
    assert status.startswith("7 of 14 stages published; not yet: filter")
    view = client.predict("extract", api_name="/stage")
    lineage, hub, rows = view[2], view[4], view[6]
    assert hub == ""  # a local store has no Hub viewer to link
    assert f"input: `{facts['corpus'].name}`" in lineage  # the corpus folder, by its name
    exported = export_rows(facts["store"], "local/tiny-extract", root / "export")
    assert [r[0] for r in rows["data"]] == list(range(len(exported)))
    assert [r[rows["headers"].index("name")] for r in rows["data"]] == [r["name"] for r in exported]
    rejected = client.predict("extract", "", "rejected", 1, api_name="/rows")
    assert {r[rejected[0]["headers"].index("drop_reason")] for r in rejected[0]["data"]} == {
        "duplicate",
        "syntax_error",
    }
    found = client.predict("extract", "", "train", "CLAMP", "all text columns", api_name="/search")
    assert [r[rows["headers"].index("name")] for r in found[0]["data"]] == ["clamp"]
    assert "searched all 3 rows" in found[1]
    detail = json.loads(
        client.predict("extract", "", "train", found[0]["data"][0][0], api_name="/row")[0]
    )
    assert detail == next(r for r in exported if r["name"] == "clamp")


def test_provenance_follows_an_sft_row_back_to_its_source_file(space):
    client, facts, _ = space
    sft = facts["sft"][1]
    chain, status = client.predict("select", "", "train", 1, api_name="/provenance")
    assert status == "7 stages back from select row 1"
    stages = re.findall(r"<h3>\d+\. (\w+) — ", chain)
    assert stages == ["select", "mutate", "execute", "responses", "instructions", "concepts", "extract"]
    executed = next(r for r in facts["executed"] if r["response_id"] == sft["response_id"])
    shown = html.unescape(chain)
    for text in (
        sft["response"],
        executed["response"],
        sft["instruction"],
        *sft["concepts"],
        sft["function"].strip(),
    ):
        assert text.strip() in shown
    assert "<b>response (rewritten by this stage)</b>" in chain.split("<h3>2.")[0]  # by select
    source = (facts["corpus"] / sft["path"]).read_text()
    assert f"<b>corpus: {sft['path']} (license: unknown)</b>" in chain
    assert source.strip() in shown  # the whole (short) source file


def test_an_unpublished_stage_or_a_bad_row_is_one_line_and_the_page_goes_on(space):
    client, _, _ = space
    outputs = client.predict("typecheck", api_name="/stage")
    expected = "⚠️ stage 'typecheck' is not published yet (local/tiny-typecheck"
    assert outputs[-1].startswith(expected)
    assert "\n" not in outputs[-1]
    _, status = client.predict("select", "", "train", 99, api_name="/provenance")
    assert status.startswith("⚠️ no row 99 in local/tiny-select") and "\n" not in status
    assert client.predict("extract", api_name="/stage")[-1] == ""


def test_suggested_hardware_grows_with_the_model():
    from space_app.bundle import suggest_hardware

    assert [suggest_hardware(n) for n in (None, 10**8, 7 * 10**9, 15 * 10**9, 33 * 10**9)] == [
        "cpu-upgrade",
        "cpu-upgrade",
        "a10g-small",
        "l40sx1",
        "a100-large",
    ]


def test_local_chat_streams_answers_without_spaces_token_by_token(tiny_model):
    """transformers' own streamer waits for a space; code such as `x>>=1;y<<=2` must still flow."""
    import torch
    from space_app.chat import _token_streamer
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    answer = "x>>=1;y<<=2;z=x|y"
    ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    assert len(ids) > 3
    streamer = _token_streamer(tokenizer)
    streamer.put(torch.tensor([[1, 2, 3]]))  # the prompt: skipped
    for token in ids:
        streamer.put(torch.tensor([token]))
    streamer.end()
    pieces = [piece for piece in streamer.text_queue.queue if piece not in ("", None)]
    assert "".join(pieces) == tokenizer.decode(ids)
    assert len(pieces) >= len(ids) - 1  # one piece per token, none held back for a space


# -- what a visitor can and cannot reach (issue 23) ---------------------------------------------


def _fake_endpoint(handler=_FakeOpenAI) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}/v1"


def test_the_spaces_key_goes_only_to_endpoints_its_owner_configured(space, monkeypatch):
    client, _, _ = space
    monkeypatch.setenv("HF_TOKEN", "hf_owner_secret")
    monkeypatch.setenv("ENDPOINT_API_KEY", "owner_endpoint_key")
    monkeypatch.delenv("ENDPOINT_URL", raising=False)
    server, url = _fake_endpoint()
    _FakeOpenAI.auth.clear()
    try:
        client.predict("hi", "", 0.0, 8, "", url, "", "", api_name="/chat")  # GET, then POST
        client.predict("hi", "", 0.0, 8, "", url, "m", "visitor-key", api_name="/chat")
        monkeypatch.setenv("ENDPOINT_URL", f"http://elsewhere:1/v1,{url}/")  # the owner's
        client.predict("hi", "", 0.0, 8, "", url, "m", "", api_name="/chat")
    finally:
        server.shutdown()
    assert _FakeOpenAI.auth == [None, None, "Bearer visitor-key", "Bearer owner_endpoint_key"]


def test_the_api_opens_no_repository_the_recipe_does_not_name(space, tmp_path):
    client, facts, _ = space
    store = open_store(facts["store"])
    commit = publish_split(store, "local/private-notes", numbered_rows(3), tmp_path)
    result = f"local/private-notes@{commit}"
    refused = "⚠️ local/private-notes is not one of the repositories this Space shows"
    assert client.predict(result, api_name="/eval_benchmarks")[-1] == refused
    assert client.predict(result, "train", api_name="/eval_samples")[-1] == refused
    assert client.predict(result, "train", 0, api_name="/eval_sample")[-1] == refused
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as failure:  # a model repository of the store, not offered
        client.predict(
            "hi", "store:local/private-notes@main", 0, 4, "", "", "", "", api_name="/chat"
        )
    assert "does not offer the model local/private-notes@main" in str(failure.value)


def test_a_long_message_is_refused_at_once_in_one_line(space):
    from gradio_client.exceptions import AppError

    client, _, _ = space
    started = time.monotonic()
    with pytest.raises(AppError) as failure:
        client.predict(
            "x" * 1_000_000, "store:local/tiny-train@main", 0, 8, "", "", "", "", api_name="/chat"
        )
    assert str(failure.value).startswith("message too long: 1,000,000 characters (at most 16,000)")
    assert time.monotonic() - started < 10
    with pytest.raises(AppError) as failure:  # under the characters, over the prompt tokens
        client.predict(
            "a1 " * 5000, "store:local/tiny-train@main", 0, 8, "", "", "", "", api_name="/chat"
        )
    assert "message too long: the prompt is" in str(failure.value)


class _SlowOpenAI(_FakeOpenAI):
    def do_POST(self):
        time.sleep(2.0)
        super().do_POST()


def test_one_slow_chat_does_not_queue_the_next_visitor(space):
    from gradio_client import Client

    client, _, _ = space
    other = Client(client.src, verbose=False)
    server, url = _fake_endpoint(_SlowOpenAI)
    try:
        started = time.monotonic()
        jobs = [
            c.submit("hi", "", 0, 8, "", url, "m", "", api_name="/chat") for c in (client, other)
        ]
        answers = [job.result()[0] for job in jobs]
        elapsed = time.monotonic() - started
    finally:
        server.shutdown()
    assert answers == ["def add(a, b): return a + b"] * 2
    assert elapsed < 3.6, f"two 2-second answers took {elapsed:.1f} s: served one after the other"
