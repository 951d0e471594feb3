"""The Space in a real browser: headless Chromium (Debian's, driven by Playwright's Python package,
no browser download) on the page `builder space serve` serves for the tiny recipe's test store.

It chats and sees the reply appear, opens the Evaluation and Data tabs and sees the scores,
plots and rows the store holds, and follows provenance chains to the source file. Screenshots
go to `test-artifacts/space/` (or `$BUILDER_TEST_ARTIFACTS/space/`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests import space_store
from tests.fake_hub import free_port
from tests.helpers import ROOT, TINY

pytestmark = pytest.mark.slow  # a browser drives a running Space

CHROMIUM = os.environ.get("CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
# Flags that work in containers without a GPU or network.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 60_000  # per expectation; a busy 2-core machine loads the model in a few seconds

pytest.importorskip("playwright", reason="the browser test drives Chromium with Playwright")
if not Path(CHROMIUM).is_file():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def page_url(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("space-browser")
    facts = space_store.build(root, tiny_model)
    port = free_port()
    log = root / "serve.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "builder",
                "space",
                "serve",
                str(TINY),
                "--port",
                str(port),
                *space_store.cli_args(facts["overrides"]),
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "GRADIO_ANALYTICS_ENABLED": "False"},
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:  # until the server answers (or dies)
            assert server.poll() is None, log.read_text()[-3000:]
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, "builder space serve did not start"
                time.sleep(0.3)
        yield url, facts
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # A fresh profile each run (Playwright's own temporary user data dir).
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def shots(request):
    folder = Path(os.environ.get("BUILDER_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "space"
    folder.mkdir(parents=True, exist_ok=True)
    return lambda page, name: page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def choose(page, dropdown: str, option: str) -> None:
    page.locator(f"{dropdown} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def test_a_reader_chats_reads_the_scores_browses_the_data_and_follows_a_row_home(
    page_url, browser, shots
):
    from playwright.sync_api import expect

    url, facts = page_url
    started = time.monotonic()
    lap = lambda what: print(f"{time.monotonic() - started:6.1f} s  {what}")
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    expect.set_options(timeout=TIMEOUT_MS)
    page.goto(url)

    # Chat: the checkpoint on main answers, streamed into the page.
    expect(page.locator("#chat-model input")).to_have_value("local/tiny-train @ main")
    page.get_by_text("Settings and endpoint").click()
    page.locator("#max-tokens input[type=number]").fill("32")
    page.locator("#max-tokens input[type=number]").press("Enter")
    box = page.get_by_placeholder("Type a message...")
    box.fill("Write a function that adds two numbers.")
    box.press("Enter")
    expect(page.locator("#chat-status")).to_contain_text("local/tiny-train@main on cpu")
    reply = page.locator(".message.bot").last
    expect(reply).not_to_have_text("")
    shots(page, "1-chat")
    lap("chat")

    # Evaluation: every evaluated revision beside the published reference, and the plot.
    page.get_by_role("tab", name="Evaluation").click()
    table = page.locator("#eval-table")
    for text in ("local/tiny-train@step-000002", "base: ", "72.6", "63.4", "40.6", "75", "12.5"):
        expect(table).to_contain_text(text)
    expect(page.locator("#eval-plot canvas, #eval-plot svg").first).to_be_visible()
    page.locator("#eval-samples [role=row]").filter(has_text="HumanEval/1").locator(
        "[role=gridcell]"
    ).first.click()
    expect(page.locator("#eval-sample")).to_contain_text("def task_1():")
    shots(page, "2-evaluation")
    lap("evaluation")

    # Data: the funnel, then a stage's rows, a search, a row, and its provenance.
    page.get_by_role("tab", name="Data").click()
    funnel = page.locator("#funnel")
    for text in ("extract", "duplicate: 1, syntax_error: 1", "too_short: 1", "not published yet"):
        expect(funnel).to_contain_text(text)
    expect(page.locator("#funnel-plot canvas, #funnel-plot svg").first).to_be_visible()
    page.get_by_text("what execution measured").click()
    figures = page.locator("#figures")
    for text in ("Test strength (mutants caught)", "A strong test block", "missed: return@2"):
        expect(figures).to_contain_text(text)
    expect(page.locator("#rows")).to_contain_text(facts["sft"][0]["instruction"][:40])
    choose(page, "#data-stage", "extract")
    expect(page.locator("#page-info")).to_contain_text("train: 3 rows")
    expect(page.locator("#rows")).to_contain_text("def area(radius):")
    page.locator("#search textarea, #search input").first.fill("clamp")
    page.locator("#search textarea, #search input").first.press("Enter")
    expect(page.locator("#page-info")).to_contain_text("'clamp': matches in rows")
    shots(page, "3-data")
    lap("data")
    page.locator("#rows [role=row]").filter(has_text="clamp").first.locator(
        "[role=gridcell]"
    ).first.click()
    expect(page.locator("#row-detail")).to_contain_text('"name": "clamp"')
    page.locator("#trace-row").click()
    chain = page.locator("#chain")
    expect(chain).to_contain_text("Source file")
    expect(chain).to_contain_text("corpus: pkg/b.py (license: unknown)")
    expect(chain).to_contain_text("Clamp value into [low, high].")

    # Provenance of a row of the final SFT dataset, back to its source file.
    choose(page, "#provenance-stage", "select")
    page.locator("#provenance-row input").fill("0")
    page.locator("#trace").click()
    sft = facts["sft"][0]
    expect(page.locator("#provenance-status")).to_contain_text("7 stages back from select row 0")
    for text in (sft["instruction"], sft["concepts"][0], "def area(radius):", "corpus: pkg/a.py"):
        expect(chain).to_contain_text(text)
    shots(page, "4-provenance")
    lap("provenance")
    page.close()
