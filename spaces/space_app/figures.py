"""The Data tab's figures: what every published stage measured over all its rows (its manifest's
`figures`: task pass rates, test strength with a weak and a strong test block quoted from the
data, the SFT pairs each selection policy gives, tasks by difficulty), as HTML in which every
value is escaped (`safe_html.py`): quoted model text shows as text, never as markup."""

from __future__ import annotations

from builder.pipeline.dataset_card import figure_cell
from space_app import safe_html
from space_app.catalog import Catalog, NotPublished


def figures_html(catalog: Catalog) -> str:
    parts = []
    for stage in catalog.config.data_stages:
        try:
            commit, manifest = catalog.published(stage.name)
        except NotPublished:
            continue
        figures = (manifest or {}).get("figures") or []
        if figures:
            parts.append(f"<h3>{safe_html.text(stage.name)} <small>{commit[:12]}</small></h3>")
            parts += [_figure(f) for f in figures]
    if not parts:
        return "<p>No published stage has figures yet (execute, mutate, select, rl_tasks).</p>"
    return "\n".join(parts)


def _figure(figure: dict) -> str:
    title = f"<h4>{safe_html.text(figure.get('title', ''))}</h4>"
    if "blocks" in figure:
        body = f"<p>{safe_html.text(figure.get('caption', ''))}</p>" + "".join(
            safe_html.block(b.get("text", ""), b.get("label")) for b in figure["blocks"]
        )
    else:
        head = "".join(f"<th>{safe_html.text(h)}</th>" for h in figure.get("headers", []))
        rows = "".join(
            "<tr>" + "".join(f"<td>{safe_html.text(figure_cell(v))}</td>" for v in row) + "</tr>"
            for row in figure.get("rows", [])
        )
        body = f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    note = f"<p><i>{safe_html.text(figure['note'])}</i></p>" if figure.get("note") else ""
    return title + body + note
