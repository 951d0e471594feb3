"""The Space's guards, one function at a time: row values shown as text, source files read
only inside the corpus and never through a link, the chat's time bounds and the server's key,
and `builder space serve` on an address it cannot have."""

from __future__ import annotations

import html
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.helpers import ROOT, TINY, run_cli

pytest.importorskip("gradio")
sys.path.insert(0, str(ROOT / "spaces"))

from space_app import provenance
from space_app.chat import Settings, stream_endpoint, stream_local
from space_app.chat_guard import ChatLimits, endpoint_key
from space_app.evaluation import sample_html

HOSTILE = (
    '<img src="http://evil.example/pixel.png"> [log in again](http://evil.example/login) </pre>'
)


def test_row_values_render_as_text_in_the_provenance_and_evaluation_views():
    row = {"instruction": HOSTILE, "concepts": [HOSTILE], "response": HOSTILE + "\n" * 3}
    link = provenance.Link("instructions", "ns/r", "c" * 40, "train", 0, row, list(row))
    source = provenance.Source(f"corpus: {HOSTILE} (license: x)", text=HOSTILE, notes=[HOSTILE])
    shown = provenance.render(provenance.Chain([link], source, note=HOSTILE))

    class Split:
        def row(self, index):
            return {"task_id": HOSTILE, "solution": HOSTILE, "prompt": HOSTILE, "error": HOSTILE}

    class Catalog:
        def split(self, repo, commit, config):
            return Split()

    graded = sample_html(Catalog(), "ns/eval@c", "humaneval_plus", 0)
    for page in (shown, graded):
        assert "<img" not in page and "</pre> " not in page and "evil.example/login)" in page
        assert 'href="http://evil' not in page
        assert html.unescape(page).count(HOSTILE) >= 3  # every value there, as its characters


def test_a_source_file_is_read_only_inside_the_corpus_and_never_through_a_link(tmp_path):
    corpus, outside = tmp_path / "corpus", tmp_path / "outside"
    (corpus / "pkg").mkdir(parents=True)
    outside.mkdir()
    (outside / "token").write_text("hf_secret_token")
    (corpus / "pkg" / "ok.py").write_text("def f():\n    return 1\n")
    (corpus / "leak.py").symlink_to(outside / "token")
    (corpus / "linked").symlink_to(outside, target_is_directory=True)
    (corpus / "inner.py").symlink_to(corpus / "pkg" / "ok.py")  # a link, even inside
    assert provenance.read_inside(corpus, "pkg/ok.py") == "def f():\n    return 1\n"
    for path in ("leak.py", "linked/token", "inner.py", "../outside/token", "/etc/hostname", ""):
        assert provenance.read_inside(corpus, path) is None, path
    found = provenance.Source("x")
    source = {"kind": "dir", "path": "corpus"}
    provenance._from_folder(found, {"path": "leak.py"}, source, [str(corpus)])
    assert found.text is None and "never followed" in found.notes[0]
    found = provenance.Source("x")  # a corpus the Space was not given: nothing read
    provenance._from_folder(found, {"path": "pkg/ok.py"}, source, [])
    assert found.text is None


class _Trickle(BaseHTTPRequestHandler):
    """Streams a chunk every 0.2 s for 10 s, and records the Authorization header."""

    auth: list = []

    def do_POST(self):
        type(self).auth.append(self.headers.get("Authorization"))
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m"}
        try:
            for _ in range(50):
                delta = {"index": 0, "delta": {"content": "x"}, "finish_reason": None}
                self.wfile.write(f"data: {json.dumps({**chunk, 'choices': [delta]})}\n\n".encode())
                self.wfile.flush()
                time.sleep(0.2)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


def test_an_endpoint_answer_is_cut_at_the_time_bound_and_gets_no_key_of_the_server(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_owner_secret")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Trickle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/v1"
    try:
        started = time.monotonic()
        key = endpoint_key(url, "", [])
        texts = list(stream_endpoint(url, "m", [], Settings(), key, ChatLimits(max_seconds=1.0)))
        elapsed = time.monotonic() - started
    finally:
        server.shutdown()
    assert 1.0 <= elapsed < 3.0 and 2 <= len(texts[-1]) < 20
    assert _Trickle.auth == [None]
    assert endpoint_key(url + "/", "", [url]) == "hf_owner_secret"  # configured by the owner


def test_a_local_answer_is_cut_at_the_time_bound(tiny_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    tokenizer.chat_template = "{% for m in messages %}{{ m.content }}{% endfor %}"
    messages = [{"role": "user", "content": "hi"}]
    started = time.monotonic()
    texts = list(
        stream_local(
            tokenizer, model, messages, Settings(1.0, 100_000), ChatLimits(max_seconds=0.5)
        )
    )
    assert time.monotonic() - started < 3.0 and texts


def test_serve_names_a_taken_port_a_bad_port_or_a_foreign_address_in_one_line(caplog):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cases = [
            (["--port", str(port)], f"port {port} on 127.0.0.1 is taken by another program"),
            (["--port", "70000"], "--port 70000: a port is a number from 1 to 65535"),
            (["--host", "203.0.113.9"], "--host 203.0.113.9: not an address of this machine"),
            (["--host", "no-such-host.invalid"], "--host no-such-host.invalid: not an address"),
        ]
        for args, expected in cases:
            caplog.clear()
            assert run_cli("space", "serve", TINY, *args) == 2
            assert expected in caplog.text and "Traceback" not in caplog.text, caplog.text


def test_figures_quote_model_text_as_text_in_the_space_and_fenced_in_the_card():
    from space_app.figures import figures_html

    from builder.pipeline.dataset_card import figures_markdown

    sneaky = HOSTILE + "\n```\n[click](http://evil.example)\n````"
    figures = [
        {"title": "Task pass rates", "headers": ["range", "tasks", "share"],
         "rows": [["0", 3, 0.5], ["1", 3, 0.5]], "note": "6 tasks"},
        {"title": "A weak test block", "caption": "Strength 0.00",
         "blocks": [{"label": "instruction", "language": "text", "text": sneaky},
                    {"label": "tests", "language": "python", "text": "assert True"}]},
    ]  # fmt: skip

    class Catalog:
        class config:
            data_stages = [type("Stage", (), {"name": "mutate"})()]

        def published(self, name, revision=None):
            return "c" * 40, {"figures": figures}

    shown = figures_html(Catalog())
    assert "<img" not in shown and "<a " not in shown and html.escape(HOSTILE) in shown
    assert "<td>0.5</td>" in shown and "<h4>A weak test block</h4>" in shown
    card = figures_markdown(figures)
    fence = "`````"  # one more backtick than the longest run in the text
    assert f"{fence}text\n{sneaky}\n{fence}" in card
    assert "| 1 | 3 | 0.5 |" in card
