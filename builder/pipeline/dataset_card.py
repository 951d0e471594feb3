"""The dataset card (README.md) of a published revision: YAML the Hub understands, then prose.

The YAML front matter carries what the Hub's viewer and search read (configs and splits, license,
tags, source datasets, size category); the markdown says where the data came from, what the stage
did and why rows were dropped, so that a reader of the Hub page needs nothing else.
"""

from __future__ import annotations

import json
import re

import yaml

from builder.pipeline.shards import SPLIT_DIRS


def render_card(manifest: dict, notes: str = "") -> str:
    return (
        "---\n"
        + yaml.safe_dump(_metadata(manifest), sort_keys=False)
        + "---\n\n"
        + _body(manifest, notes)
    )


def _metadata(manifest: dict) -> dict:
    source = manifest["input"]
    # Kept and dropped rows have different columns, and one config has one schema: the
    # dropped rows are their own config, `load_dataset(repo, "rejected")`.
    configs = [
        {
            "config_name": "default" if split == "train" else split,
            "data_files": [{"split": split, "path": f"{SPLIT_DIRS[split]}/{split}-*.parquet"}],
        }
        for split in ("train", "rejected")
        if split == "train" or manifest["splits"][split]["rows"] > 0
    ]
    metadata = {
        "pretty_name": f"{manifest['recipe']['name']}: {manifest['stage']}",
        "license": "other",
        "tags": ["code", "synthetic", "code-instruct-builder", f"stage:{manifest['stage']}"],
        "task_categories": ["text-generation"],
        "size_categories": [_size_category(manifest["rows_out"])],
        "configs": configs,
    }
    if source["kind"] in ("hub", "store"):
        metadata["source_datasets"] = [source["repo"]]
    return metadata


def _body(manifest: dict, notes: str) -> str:
    source = manifest["input"]
    where = source.get("repo") or source.get("path")
    lines = [
        f"# {manifest['recipe']['name']} / {manifest['stage']}",
        "",
        manifest.get("description", ""),
        "",
        "## Lineage",
        "",
        f"- Input: `{where}` at revision `{source['revision']}` ({source['kind']})",
        f"- Stage: `{manifest['stage']}` (version {manifest['stage_version']}), "
        f"fingerprint `{manifest['fingerprint']}`",
        f"- Recipe: `{manifest['recipe']['name']}` from `{manifest['recipe']['file']}`, "
        f"fingerprint `{manifest['recipe']['fingerprint']}`",
        f"- Published: {manifest['created_at']}",
        "",
        "## Rows",
        "",
        "| | rows |",
        "| --- | ---: |",
        f"| in | {manifest['rows_in']:,} |",
        f"| kept (`train` split) | {manifest['rows_out']:,} |",
        f"| dropped (`rejected` config) | {manifest['splits']['rejected']['rows']:,} |",
        "",
    ]
    if manifest["drops"]:
        lines += ["### Dropped, by reason", "", "| reason | rows |", "| --- | ---: |"]
        lines += [f"| {r} | {n:,} |" for r, n in sorted(manifest["drops"].items())]
        lines.append("")
    if manifest["stats"]:
        lines += ["### Other counts", "", "| count | value |", "| --- | ---: |"]
        lines += [f"| {k} | {v:,} |" for k, v in sorted(manifest["stats"].items())]
        lines.append("")
    if manifest.get("figures"):
        lines += ["## Figures", "", figures_markdown(manifest["figures"]), ""]
    lines += [
        "## Parameters",
        "",
        "```json",
        json.dumps(manifest["params"], indent=2, sort_keys=True),
        "```",
        "",
    ]
    if manifest.get("settings"):
        lines += [
            "Settings beyond the stage's parameters that decide its output:",
            "",
            "```json",
            json.dumps(manifest["settings"], indent=2, sort_keys=True, default=str),
            "```",
            "",
        ]
    lines += [
        "## Timings and software",
        "",
        "| | |",
        "| --- | --- |",
    ]
    lines += [f"| {k} | {v} s |" for k, v in manifest["timings"].items()]
    lines += [f"| {k} | {v} |" for k, v in manifest["versions"].items()]
    lines.append("")
    if notes:
        lines += ["## Notes", "", notes, ""]
    lines += [
        "Every row this stage dropped is kept, with `drop_reason` and `drop_detail`: "
        f'`load_dataset("{manifest.get("repo", "REPO")}", "rejected")`. '
        "`manifest.json` holds these facts for machines.",
        "",
    ]
    return "\n".join(lines)


def _size_category(rows: int) -> str:
    bounds = [
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
    ]
    for bound, label in bounds:
        if rows < bound:
            return label
    return "10M<n<100M"


def figures_markdown(figures: list[dict]) -> str:
    """A stage's figures (`RowStage.figures`) as markdown: a table, or an example whose blocks
    are fenced (with more backticks than they hold: model text never renders as markdown)."""
    parts = []
    for figure in figures:
        parts += [f"### {figure['title']}", ""]
        if "blocks" in figure:
            parts.append(figure["caption"])
            for block in figure["blocks"]:
                parts += ["", f"{block['label']}:", "", _fenced(block["text"], block["language"])]
        else:
            parts.append("| " + " | ".join(figure["headers"]) + " |")
            parts.append("| --- |" + " ---: |" * (len(figure["headers"]) - 1))
            parts += [f"| {' | '.join(figure_cell(v) for v in row)} |" for row in figure["rows"]]
        if figure.get("note"):
            parts += ["", figure["note"]]
        parts.append("")
    return "\n".join(parts).rstrip()


def _fenced(text: str, language: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text}\n{fence}"


def figure_cell(value) -> str:
    """A figure's table cell as text (cards and the Space show the same): 3 significant digits
    for a float, thousands separators for an int."""
    if isinstance(value, float):
        return f"{value:.3g}"
    return f"{value:,}" if isinstance(value, int) else str(value)
