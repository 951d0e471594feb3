"""The page: Chat, Evaluation, Data and Provenance tabs, wired to `handlers.py`.

Every event has an explicit API name, so `gradio_client` (and the tests) call the same functions
the page does: /chat, /models, /evaluation, /eval_benchmarks, /eval_samples, /eval_sample,
/funnel, /stage, /rows, /search, /row, /provenance.
"""

from __future__ import annotations

import gradio as gr

from space_app import evaluation
from space_app.config import SpaceConfig
from space_app.data import FUNNEL_HEADERS
from space_app.handlers import ALL_COLUMNS, Handlers

PREFIX_HINT = "e.g. Here is a Python function that"  # a StarCoder2-Instruct card suggestion


def build_app(config: SpaceConfig) -> gr.Blocks:
    h = Handlers(config)
    stages = [s.name for s in config.data_stages]
    loads: list[tuple] = []  # (fn, inputs, outputs) to run when a page opens
    with gr.Blocks(title=f"{config.recipe} · code-instruct-builder") as demo:
        gr.Markdown(
            f"# {config.recipe}\nThe model, its evaluations and every stage's data, read from "
            f"`{config.store}`. Follow any row back to the code it came from."
        )
        with gr.Tabs() as tabs:
            with gr.Tab("Chat", id="chat"):
                chat_tab(h, loads)
            with gr.Tab("Evaluation", id="evaluation"):
                evaluation_tab(h, loads)
            with gr.Tab("Data", id="data"):
                selected = data_tab(h, stages, loads)
            with gr.Tab("Provenance", id="provenance"):
                provenance_tab(h, stages, tabs, selected, loads)
        for fn, inputs, outputs in loads:
            demo.load(fn, inputs, outputs, api_visibility="private")
    return demo


def chat_tab(h: Handlers, loads: list) -> None:
    with gr.Row():
        # Choices come with each page load; the handler accepts only those (a caller of the API
        # may send anything), so Gradio's own check against the choices at build time is off.
        model = gr.Dropdown(
            label="model", choices=[], scale=4, elem_id="chat-model", allow_custom_value=True
        )
        refresh = gr.Button("↻ models", scale=1)
    with gr.Accordion("Settings and endpoint", open=False):
        with gr.Row():
            temperature = gr.Slider(0.0, 1.5, value=0.2, step=0.05, label="temperature")
            max_tokens = gr.Slider(
                1,
                h.chat_limits.max_new_tokens,
                value=min(512, h.chat_limits.max_new_tokens),
                step=1,
                label="max tokens",
                elem_id="max-tokens",
            )
        prefix = gr.Textbox(label="response prefix (optional)", placeholder=PREFIX_HINT)
        with gr.Row():
            owned = h.catalog.config.endpoints
            url = gr.Textbox(
                label="OpenAI-compatible endpoint URL (empty: load the model here)",
                placeholder=owned[0] if owned else "http://host:8000/v1",
            )
            served = gr.Textbox(label="served model name (empty: the server's first)")
        key = gr.Textbox(
            label="your API key for that endpoint (sent only to it; the Space's own key goes "
            "only to its owner's endpoints)",
            type="password",
        )
    status = gr.Markdown(elem_id="chat-status")
    gr.ChatInterface(
        h.chat,
        additional_inputs=[model, temperature, max_tokens, prefix, url, served, key],
        additional_outputs=[status],
        api_name="chat",
        concurrency_limit=h.chat_limits.concurrency,  # Gradio's default: one visitor at a time
        fill_height=False,
    )
    refresh.click(h.models, None, [model, status], api_name="models")
    loads.append((h.models, None, [model, status]))


def evaluation_tab(h: Handlers, loads: list) -> None:
    status = gr.Markdown(elem_id="eval-status")
    scores = gr.Dataframe(
        headers=evaluation.TABLE_HEADERS, label="pass@1 (%)", elem_id="eval-table", wrap=True
    )
    # A title, not a label: Gradio 6.31 clips a labelled plot's legend.
    title = "pass@1 over training steps"
    plot = gr.LinePlot(None, "step", "pass@1", color="benchmark", title=title, elem_id="eval-plot")
    refresh = gr.Button("↻ evaluations")
    gr.Markdown("### Each task's generated code and verdict")
    with gr.Row():
        result = gr.Dropdown(label="evaluation", choices=[], scale=3, allow_custom_value=True)
        config = gr.Dropdown(label="benchmark", choices=[], scale=1, allow_custom_value=True)
    with gr.Row():
        samples = gr.Dataframe(
            headers=evaluation.SAMPLE_HEADERS, elem_id="eval-samples", max_height=420, scale=1
        )
        sample = gr.HTML(elem_id="eval-sample")  # row values escaped: safe_html.py
    picked = gr.Markdown(elem_id="eval-drilldown-status")
    refresh.click(h.evaluation, None, [scores, plot, result, status], api_name="evaluation")
    loads.append((h.evaluation, None, [scores, plot, result, status]))
    result.change(h.eval_benchmarks, result, [config, picked], api_name="eval_benchmarks")
    config.change(h.eval_samples, [result, config], [samples, picked], api_name="eval_samples")
    index = gr.Number(visible=False, precision=0)
    index.change(h.eval_sample, [result, config, index], [sample, picked], api_name="eval_sample")
    samples.select(
        h.eval_sample_selected, [result, config], [sample, picked], api_visibility="private"
    )


def data_tab(h: Handlers, stages: list[str], loads: list):
    status = gr.Markdown(elem_id="data-status")
    funnel = gr.Dataframe(headers=FUNNEL_HEADERS, label="funnel", elem_id="funnel", wrap=True)
    title = "rows kept and dropped, by stage"
    bars = gr.BarPlot(None, "stage", "rows", color="part", title=title, elem_id="funnel-plot")
    gr.Button("↻ stages").click(h.funnel, None, [funnel, bars, status], api_name="funnel")
    loads.append((h.funnel, None, [funnel, bars, status]))
    with gr.Accordion("what execution measured: pass rates, test strength, pairs by policy",
                      open=False):  # fmt: skip
        figures = gr.HTML(elem_id="figures")  # row values escaped: safe_html.py
    loads.append((h.figures, None, [figures]))
    with gr.Row():
        first = "select" if "select" in stages else (stages[-1] if stages else None)  # the pairs
        stage = gr.Dropdown(stages, value=first, label="stage", elem_id="data-stage")
        revision = gr.Dropdown(label="revision", choices=[], scale=2, allow_custom_value=True)
        split = gr.Radio(["train", "rejected"], value="train", label="rows")
    lineage = gr.Markdown(elem_id="lineage")
    hub = gr.HTML()
    with gr.Accordion("card", open=False):
        card = gr.Markdown()
    with gr.Row():
        query = gr.Textbox(label="search", placeholder="text in a row", scale=3, elem_id="search")
        column = gr.Dropdown([ALL_COLUMNS], value=ALL_COLUMNS, label="in", scale=1)
        find = gr.Button("search", scale=0)
        more = gr.Button("more", scale=0)
    with gr.Row():
        previous = gr.Button("◀", scale=0)
        number = gr.Number(1, precision=0, label="page", scale=0)
        following = gr.Button("▶", scale=0)
        info = gr.Markdown(elem_id="page-info")
    rows = gr.Dataframe(label="rows (click one)", elem_id="rows", max_height=520, wrap=False)
    with gr.Row():
        detail = gr.Code(label="row", language="json", elem_id="row-detail")
    selected = gr.Number(visible=False, precision=0)
    trace = gr.Button("Trace this row's provenance ▶", elem_id="trace-row")
    cursor = gr.Number(None, visible=False, precision=0)  # where "more" starts; in the API too

    view = [revision, split, lineage, card, hub, column, rows, info, number, status]
    stage.change(h.stage, [stage], view, api_name="stage")
    revision.input(h.stage, [stage, revision], view, api_visibility="private")
    loads.append((h.stage, [stage], view))
    page_outputs = [rows, info, number, status]
    split.input(
        h.page,
        [stage, revision, split, gr.Number(1, visible=False)],
        page_outputs,
        api_visibility="private",
    )
    number.submit(h.page, [stage, revision, split, number], page_outputs, api_name="rows")
    for button, delta in ((previous, -1), (following, 1)):
        button.click(
            lambda n, d=delta: max(1, int(n or 1) + d), number, number, api_visibility="private"
        ).then(h.page, [stage, revision, split, number], page_outputs, api_visibility="private")
    search_outputs = [rows, info, cursor, status]
    search_inputs = [stage, revision, split, query, column, gr.Number(0, visible=False)]
    find.click(h.search, search_inputs, search_outputs, api_name="search")
    query.submit(h.search, search_inputs, search_outputs, api_visibility="private")
    more.click(
        h.search,
        [stage, revision, split, query, column, cursor],
        search_outputs,
        api_visibility="private",
    )
    rows.select(
        h.row_selected,
        [stage, revision, split],
        [detail, selected, status],
        api_visibility="private",
    )
    index = gr.Number(visible=False, precision=0)
    index.change(h.row, [stage, revision, split, index], [detail, selected, status], api_name="row")
    return stage, revision, split, selected, trace


def provenance_tab(h: Handlers, stages: list[str], tabs: gr.Tabs, selected, loads: list) -> None:
    data_stage, data_revision, data_split, data_index, trace_button = selected
    gr.Markdown(
        "From a row of any stage (by default the final SFT dataset) back through every stage "
        "that made it, to the source file, its repository and license."
    )
    with gr.Row():
        stage = gr.Dropdown(
            stages, value=stages[-1] if stages else None, label="stage", elem_id="provenance-stage"
        )
        revision = gr.Textbox(label="revision (empty: latest)", scale=1)
        split = gr.Radio(["train", "rejected"], value="train", label="rows")
        index = gr.Number(0, precision=0, label="row #", elem_id="provenance-row")
        go = gr.Button("Trace", elem_id="trace")
    status = gr.Markdown(elem_id="provenance-status")
    chain = gr.HTML(elem_id="chain")  # row values escaped: safe_html.py
    go.click(h.provenance, [stage, revision, split, index], [chain, status], api_name="provenance")
    loads.append((h.provenance, [stage, revision, split, index], [chain, status]))
    stage.input(lambda: "", None, revision, api_visibility="private")  # another stage: its latest
    trace_button.click(
        lambda s, r, sp, i: (s, r or "", sp, i, gr.Tabs(selected="provenance")),
        [data_stage, data_revision, data_split, data_index],
        [stage, revision, split, index, tabs],
        api_visibility="private",
    ).then(h.provenance, [stage, revision, split, index], [chain, status], api_visibility="private")
