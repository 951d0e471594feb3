"""What each control of the page does, as plain functions of its inputs (the UI wires them in
`ui.py`, and `gradio_client` calls them by their API names).

Every handler ends with a one-line status. A handler that fails (a stage not published yet, a
revision that does not exist, a store that cannot be reached) leaves its outputs as they were
and says why in that line, so the page keeps working; nothing shows a traceback (unexpected
errors are logged with theirs on the server).
"""

from __future__ import annotations

import functools
import logging

import gradio as gr
import pandas as pd

from builder.errors import BuilderError
from space_app import data, evaluation, figures, provenance, safe_html
from space_app.catalog import Catalog
from space_app.chat import (
    NO_TEMPLATE_NOTE,
    ChatError,
    LocalModels,
    Settings,
    has_chat_template,
    messages_of,
    model_choices,
    model_name,
    stream_endpoint,
    stream_local,
)
from space_app.chat_guard import ChatLimits, bounded, check_conversation, endpoint_key
from space_app.config import SpaceConfig

log = logging.getLogger(__name__)
ALL_COLUMNS = "all text columns"


def one_line(err: Exception) -> str:
    if isinstance(err, BuilderError):
        return str(err)
    log.error("unexpected error", exc_info=err)
    first = (str(err).strip().splitlines() or [""])[0]
    return f"{type(err).__name__}: {first}"[:300]


def guarded(outputs: int):
    """On an error: every output but the last (the status line) left as it was."""

    def wrap(fn):
        @functools.wraps(fn)
        def inner(*args):
            try:
                return fn(*args)
            except Exception as err:  # noqa: BLE001 - shown on the page as one line
                return (*[gr.skip()] * (outputs - 1), f"⚠️ {one_line(err)}")

        return inner

    return wrap


def frame(headers: list[str], rows: list[list]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=headers, dtype=object)  # ints stay ints, None stays empty


class Handlers:
    def __init__(self, config: SpaceConfig):
        self.catalog = Catalog(config)
        self.local = LocalModels(self.catalog)
        self.chat_limits = ChatLimits(**config.chat_limits)

    # -- chat --------------------------------------------------------------------------------

    def chat(self, message, history, choice, temperature, max_tokens, prefix, url, served, key=""):
        """Yields (the answer so far, status). Only the listed models; an endpoint gets the
        server's key only if the owner configured it (chat_guard.py)."""
        limits = self.chat_limits
        try:
            settings = Settings(*bounded(temperature, max_tokens, limits), prefix or "")
            messages = messages_of(history, str(message or ""))
            check_conversation(messages, limits, settings.prefix)
            if url:
                url = url.strip()
                status = f"endpoint {url}"
                secret = endpoint_key(url, key or "", self.catalog.config.endpoints)
                stream = stream_endpoint(
                    url, (served or "").strip(), messages, settings, secret, limits
                )
            else:
                if not choice:
                    raise ChatError("no model to chat with: pick one, or give an endpoint URL")
                if choice not in {value for _, value in model_choices(self.catalog)}:
                    raise ChatError(
                        f"this Space does not offer the model {model_name(choice)}: pick one of "
                        "the list (its owner adds models with `builder space serve|deploy "
                        "--model`)"
                    )
                tokenizer, model = self.local.get(choice)
                status = f"{model_name(choice)} on {model.device}"
                if not has_chat_template(tokenizer):
                    status += f" {NO_TEMPLATE_NOTE}"
                stream = stream_local(tokenizer, model, messages, settings, limits)
            for text in stream:
                yield text, status
        except Exception as err:  # noqa: BLE001 - one line on the page, the chat goes on
            raise gr.Error(one_line(err), print_exception=False) from None

    @guarded(2)
    def models(self):
        choices = model_choices(self.catalog)
        value = choices[0][1] if choices else None
        return gr.Dropdown(choices=choices, value=value), f"{len(choices)} models"

    # -- evaluation --------------------------------------------------------------------------

    @guarded(4)
    def evaluation(self):
        entries = evaluation.collect(self.catalog)
        table = frame(evaluation.TABLE_HEADERS, evaluation.score_table(entries))
        points = pd.DataFrame(
            evaluation.plot_points(entries), columns=["step", "pass@1", "benchmark"]
        )
        choices = evaluation.result_choices(self.catalog, entries)
        chooser = gr.Dropdown(choices=choices, value=choices[0][1] if choices else None)
        placed = sum(e.step is not None for e in entries)
        status = f"{len(entries)} evaluated revisions ({placed} at a training step)"
        if not entries:
            status = "no evaluation published yet in " + ", ".join(self.catalog.config.eval_repos)
        return table, points, chooser, status

    @guarded(2)
    def eval_benchmarks(self, result):
        configs = evaluation.benchmark_configs(self.catalog, result) if result else []
        return gr.Dropdown(choices=configs, value=configs[0] if configs else None), ""

    @guarded(2)
    def eval_samples(self, result, config):
        if not result or not config:
            raise BuilderError("pick an evaluation and a benchmark")
        rows = evaluation.samples(self.catalog, result, config)
        return frame(evaluation.SAMPLE_HEADERS, rows), f"{config}: {len(rows)} samples"

    @guarded(2)
    def eval_sample(self, result, config, index):
        return evaluation.sample_html(self.catalog, result, config, int(index)), ""

    def eval_sample_selected(self, result, config, event: gr.SelectData):
        return self.eval_sample(result, config, event.row_value[0])

    # -- data --------------------------------------------------------------------------------

    @guarded(3)
    def funnel(self):
        result = data.funnel(self.catalog)
        bars = pd.DataFrame(result.bars, columns=["stage", "rows", "part"])
        order = [s.name for s in self.catalog.config.data_stages]
        status = f"{len(order) - len(result.missing)} of {len(order)} stages published"
        if result.missing:
            status += "; not yet: " + ", ".join(result.missing)
        plot = gr.BarPlot(value=bars, sort=order)
        return frame(data.FUNNEL_HEADERS, result.table), plot, status

    def figures(self):
        """The figures panel; an error shows in it, leaving the tab's status line alone."""
        try:
            return figures.figures_html(self.catalog)
        except Exception as err:  # noqa: BLE001 - shown on the page as one line
            return f"<p>⚠️ {safe_html.text(one_line(err))}</p>"

    @guarded(10)
    def stage(self, name, revision=None):
        """A stage's view: revisions, splits, lineage, card, Hub links, search columns, page 1."""
        commit, manifest = self.catalog.published(name, revision or None)
        repo = self.catalog.stage(name).repo
        revisions = gr.Dropdown(choices=data.revision_choices(self.catalog, name), value=commit)
        splits = data.split_names(manifest)
        pages = self.catalog.split(repo, commit, "train")
        columns = gr.Dropdown(choices=[ALL_COLUMNS, *pages.text_columns], value=ALL_COLUMNS)
        page = data.page(self.catalog, name, commit, "train", 1)
        return (
            revisions,
            gr.Radio(choices=splits, value="train"),
            data.lineage_markdown(self.catalog, name, commit, manifest),
            data.card_body(self.catalog, repo, commit),
            data.hub_links(self.catalog, repo, commit),
            columns,
            frame(page.headers, page.rows),
            page.info,
            1,
            "",
        )

    @guarded(4)
    def page(self, name, revision, split, number):
        page = data.page(self.catalog, name, revision or None, split, int(number or 1))
        return frame(page.headers, page.rows), page.info, page.number, ""

    @guarded(4)
    def search(self, name, revision, split, query, column, start=0):
        page, next_row = data.search(
            self.catalog, name, revision or None, split, query, column, int(start or 0)
        )
        return frame(page.headers, page.rows), page.info, next_row, ""

    @guarded(3)
    def row(self, name, revision, split, index):
        return (
            data.row_json(self.catalog, name, revision or None, split, int(index)),
            int(index),
            "",
        )

    def row_selected(self, name, revision, split, event: gr.SelectData):
        return self.row(name, revision, split, event.row_value[0])

    # -- provenance --------------------------------------------------------------------------

    @guarded(2)
    def provenance(self, name, revision, split, index):
        if index is None or index == "":
            raise BuilderError("pick a row first")
        commit, _ = self.catalog.published(name, revision or None)
        repo = self.catalog.stage(name).repo
        chain = provenance.trace(self.catalog, repo, commit, split or "train", int(index))
        return provenance.render(chain), f"{len(chain.links)} stages back from {name} row {index}"
