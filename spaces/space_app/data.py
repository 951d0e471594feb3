"""The Data tab's content: the funnel of the recipe's stages, a stage's lineage and card, and
pages of its kept or rejected rows (`pages.py` reads them)."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass

from builder.errors import BuilderError
from space_app.catalog import Catalog, NotPublished
from space_app.pages import cell

PAGE_ROWS = 20
SEARCH_BUDGET_S = 5.0  # a search answers within about this long, and can be continued
FUNNEL_HEADERS = [
    "stage", "rows in", "kept", "dropped", "dropped by reason", "generated tokens", "tokens/s",
    "notes", "revision",
]  # fmt: skip


@dataclass
class Funnel:
    table: list[list]  # FUNNEL_HEADERS, one row per data stage in recipe order
    bars: list[dict]  # {"stage", "rows", "part"}: kept and each drop reason, for a stacked plot
    missing: list[str]  # stages not published yet


def funnel(catalog: Catalog) -> Funnel:
    result = Funnel([], [], [])
    for stage in catalog.config.data_stages:
        try:
            commit, manifest = catalog.published(stage.name)
        except NotPublished:
            result.missing.append(stage.name)
            result.table.append(
                [stage.name, None, None, None, "not published yet", None, None, "", ""]
            )
            continue
        manifest = manifest or {}
        drops = manifest.get("drops", {})
        kept = manifest.get("rows_out")
        dropped = (manifest.get("splits", {}).get("rejected") or {}).get("rows")
        reasons = ", ".join(f"{r}: {n:,}" for r, n in sorted(drops.items(), key=lambda d: -d[1]))
        tokens, rate, notes = _work(manifest)
        result.table.append(
            [stage.name, manifest.get("rows_in"), kept, dropped, reasons, tokens, rate, notes,
             commit[:12]]
        )  # fmt: skip
        result.bars.append({"stage": stage.name, "rows": kept or 0, "part": "kept"})
        result.bars += [
            {"stage": stage.name, "rows": n, "part": f"dropped: {r}"} for r, n in drops.items()
        ]
    return result


def _work(manifest: dict) -> tuple[int | None, float | None, str]:
    """A generation step's tokens and their rate over its wall time (cache hits included),
    and what else its counts say: repairs, answer formats, execution verdicts."""
    stats = manifest.get("stats") or {}
    tokens = stats.get("output_tokens")
    seconds = (manifest.get("timings") or {}).get("process_s")
    rate = round(tokens / seconds, 1) if tokens and seconds else None
    notes = [
        f"{key.replace('_', ' ')}: {n:,}"
        for key, n in sorted(stats.items())
        if key.startswith(("repaired_", "format_", "status:", "cache_hits"))
    ]
    return tokens, rate, ", ".join(notes)


def lineage_markdown(catalog: Catalog, name: str, commit: str, manifest: dict | None) -> str:
    stage = catalog.stage(name)
    if manifest is None:
        return f"`{stage.repo}@{commit[:12]}` has no manifest: not made by code-instruct-builder."
    source = manifest.get("input") or {}
    where = source.get("repo") or source.get("path") or "no input"
    splits = manifest.get("splits", {})
    counts = ", ".join(f"{s}: {e.get('rows', 0):,} rows" for s, e in splits.items())
    recipe = manifest.get("recipe") or {}
    version, fingerprint = manifest.get("stage_version", "?"), manifest.get("fingerprint")
    lines = [
        f"**{stage.repo}** at `{commit}` — published {manifest.get('created_at', '?')}",
        "",
        f"- input: `{where}` at `{source.get('revision', '?')}` ({source.get('kind', '?')})",
        f"- stage `{manifest.get('stage')}` version {version}, fingerprint `{fingerprint}`",
        f"- recipe `{recipe.get('name')}` (fingerprint `{recipe.get('fingerprint')}`)",
        f"- {counts}",
    ]
    return "\n".join(lines)


def card_body(catalog: Catalog, repo: str, commit: str) -> str:
    """The revision's card without its YAML front matter (the Hub's metadata)."""
    text = catalog.stores["dataset"].read_text(repo, commit, "README.md") or "(no card)"
    if text.startswith("---\n"):
        end = text.find("\n---", 4)
        if end >= 0:
            text = text[end + 4 :]
    return text.strip()


def hub_links(catalog: Catalog, repo: str, commit: str) -> str:
    """On the Hub: links to the revision's files and to the Hub's own viewer (kept rows are the
    `default` config, dropped rows the `rejected` one), and the viewer of the kept rows embedded.
    The Hub's viewer shows the main branch; embedding a private dataset needs a PRO account."""
    if not catalog.config.on_hub:
        return ""
    from huggingface_hub import constants

    base = html.escape(f"{constants.ENDPOINT}/datasets/{repo}")
    return (
        f'<p><a href="{base}/tree/{commit}" target="_blank">files of this revision</a> · '
        f"the Hub's dataset viewer: "
        f'<a href="{base}/viewer/default/train" target="_blank">kept rows</a>, '
        f'<a href="{base}/viewer/rejected/rejected" target="_blank">dropped rows</a></p>'
        f'<iframe src="{base}/embed/viewer/default/train" frameborder="0" '
        'width="100%" height="560px" loading="lazy"></iframe>'
    )


def revision_choices(catalog: Catalog, name: str) -> list[tuple[str, str]]:
    """(label, commit) of a stage's published revisions, newest first."""
    stage = catalog.stage(name)
    return [
        (f"{c.id[:12]} · {c.created_at} · {c.title[:60]}", c.id)
        for c in catalog.revisions(stage.repo)
    ]


@dataclass
class Page:
    headers: list[str]
    rows: list[list]  # "#" (the row's index in the split) first, then cells
    info: str
    number: int = 1  # the page shown (a page asked past the end shows the last)


def page(catalog: Catalog, name: str, revision: str | None, split: str, number: int) -> Page:
    """Page `number` (from 1) of a split."""
    commit, _ = catalog.published(name, revision)
    pages = catalog.split(catalog.stage(name).repo, commit, split)
    total_pages = max(1, -(-pages.num_rows // PAGE_ROWS))
    number = min(max(1, int(number or 1)), total_pages)
    found = pages.rows((number - 1) * PAGE_ROWS, PAGE_ROWS)
    info = f"{split}: {pages.num_rows:,} rows · page {number} of {total_pages:,}"
    return Page(["#", *pages.columns], _cells(found, pages.columns), info, number)


def search(
    catalog: Catalog,
    name: str,
    revision: str | None,
    split: str,
    query: str,
    column: str | None,
    start: int = 0,
    budget_s: float | None = SEARCH_BUDGET_S,
) -> tuple[Page, int | None]:
    """A page of rows containing `query` from row `start` on; returns where the next page of
    matches starts (None: the scan reached the end)."""
    if not query:
        raise BuilderError("type something to search for")
    commit, _ = catalog.published(name, revision)
    pages = catalog.split(catalog.stage(name).repo, commit, split)
    columns = [column] if column and column != "all text columns" else None
    result = pages.search(query, columns, start, PAGE_ROWS, budget_s)
    if result.rows:
        shown = f"matches in rows {result.rows[0][0]:,}–{result.rows[-1][0]:,}"
    else:
        shown = "no match"
    more = (
        f"; searched up to row {result.scanned_to:,} of {pages.num_rows:,}: “more” continues"
        if result.next_row is not None
        else f"; searched all {pages.num_rows:,} rows"
    )
    info = f"{split}: '{query}': {shown}{more}"
    return Page(["#", *pages.columns], _cells(result.rows, pages.columns), info), result.next_row


def row_json(catalog: Catalog, name: str, revision: str | None, split: str, index: int) -> str:
    commit, _ = catalog.published(name, revision)
    row = catalog.split(catalog.stage(name).repo, commit, split).row(int(index))
    return json.dumps(row, indent=1, ensure_ascii=False, default=str)


def split_names(manifest: dict | None) -> list[str]:
    if manifest is None:
        return ["train"]
    names = [s for s, e in manifest.get("splits", {}).items() if e.get("files")] or ["train"]
    return sorted(names, key=lambda s: (s != "train", s))  # kept rows first


def _cells(found: list[tuple[int, dict]], columns: list[str]) -> list[list]:
    return [[index, *(cell(row.get(c)) for c in columns)] for index, row in found]
