"""Provenance: from any row of any stage, its chain back through every stage to the source file.

The chain follows the manifests, not the recipe: each revision names the exact input revision
it read (`input`: repo and commit), so the chain is the one that made the row even if the
recipe changed since. A row is found in its input by the most specific id the two share:
`response_id` (responses, execute, select), `instruction_id` (instructions), then `id` (a seed
function, from `extract` on). Each step of the chain shows the columns that stage added.

The source file: for a corpus read from folders, the file on this machine if it is still there
(said when it no longer holds the function); for a corpus in the store, its row; for a Hub
corpus (The Stack), a link to the file in its GitHub repository (at HEAD: The Stack's copy may be
older).
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from space_app import safe_html as h
from space_app.catalog import Catalog

KEYS = ("response_id", "instruction_id", "id")
SOURCE_LINES = 400  # lines of a source file shown around the function


@dataclass
class Link:
    stage: str
    repo: str
    commit: str
    split: str
    index: int
    row: dict
    added: list[str]  # the columns this stage added to its input's
    changed: list[str] = field(default_factory=list)  # input columns it rewrote (e.g. response)


@dataclass
class Source:
    where: str  # "repo: path (license)"
    text: str | None = None  # the file's text (a window around the function), if found
    first_line: int = 1
    url: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class Chain:
    links: list[Link]
    source: Source | None = None
    note: str = ""  # why the chain stops before the source, if it does


def trace(catalog: Catalog, repo: str, commit: str, split: str, index: int) -> Chain:
    pages = catalog.split(repo, commit, split)
    row, manifest = pages.row(index), catalog.manifest(repo, commit)
    columns = _columns(manifest, pages.columns)
    chain = Chain([])
    while True:
        stage = (manifest or {}).get("stage", repo)
        link = Link(stage, repo, commit, split, index, row, columns)
        chain.links.append(link)
        source = (manifest or {}).get("input") or {}
        if source.get("kind") != "store":
            chain.source = source_file(catalog, row, manifest) if manifest else None
            return chain
        parent_repo, parent_commit = source["repo"], source["revision"]
        parent_manifest = catalog.manifest(parent_repo, parent_commit)
        parent = catalog.split(parent_repo, parent_commit, "train")  # rows come from kept rows
        parent_columns = _columns(parent_manifest, parent.columns)
        link.added = [c for c in columns if c not in parent_columns]
        key = next((k for k in KEYS if row.get(k) is not None and k in parent_columns), None)
        found = parent.find(key, row[key]) if key else None
        if found is None:
            what = (
                f"{key} = {row[key]!r}" if key else "an id column (response_id, instruction_id, id)"
            )
            chain.note = (
                f"{parent_repo}@{parent_commit[:12]} has no row with {what}: the chain stops here"
            )
            return chain
        link.changed = [c for c in parent_columns if c in row and row[c] != found[1].get(c)]
        repo, commit, split, manifest, columns = (
            parent_repo,
            parent_commit,
            "train",
            parent_manifest,
            parent_columns,
        )
        index, row = found


def _columns(manifest: dict | None, fallback: list[str]) -> list[str]:
    return list(((manifest or {}).get("columns") or {}).get("train") or fallback)


def source_file(catalog: Catalog, row: dict, manifest: dict) -> Source | None:
    """Where the first stage's row came from, for a row with `path` (an `extract` row)."""
    if not row.get("path"):
        return None
    source = manifest.get("input") or {}
    where = f"{row.get('repo') or '?'}: {row['path']} (license: {row.get('license') or 'unknown'})"
    found = Source(where)
    kind = source.get("kind")
    if kind == "dir":
        _from_folder(found, row, source, catalog.config.corpora)
    elif kind == "store":
        _from_store(catalog, found, row, source, manifest.get("params") or {})
    elif kind == "hub":
        repo = row.get("repo") or ""
        if repo.count("/") == 1:
            found.url = h.github_link(repo, row["path"], row.get("lineno") or 1)
        found.notes.append(
            f"read from the Hub dataset {source.get('repo')}@{str(source.get('revision'))[:12]}; "
            "the link shows the repository's current HEAD, which may differ"
        )
    if found.text is not None:
        _window(found, row)
    return found


def _from_folder(found: Source, row: dict, source: dict, corpora: list[str]) -> None:
    """The file under one of the recipe's corpus folders (a manifest names them by their last
    part only), read only if no part of its path is a link and it stays inside that folder."""
    named = {Path(p).name for p in str(source.get("path") or "").split(",") if p}
    roots = [Path(c).resolve() for c in corpora if Path(c).name in named]
    root = next((r for r in roots if r.name == row.get("repo")), roots[0] if roots else None)
    if root is None:
        found.notes.append("read from a folder on the machine that ran extract; not readable here")
        return
    text = read_inside(root, str(row["path"]))
    if text is None:
        found.notes.append(
            f"{root / row['path']} is not a regular file inside {root} on this machine now "
            "(missing, or reached through a link, which is never followed)"
        )
        return
    found.text = text
    found.notes.append(f"the file {root / row['path']} as it is on this machine now")


def read_inside(root: Path, relative: str) -> str | None:
    """The text of `root/relative` if it is a regular file inside `root` reached without any
    link (each part checked, the file opened with O_NOFOLLOW); else None."""
    parts = Path(relative).parts
    if not parts or Path(relative).is_absolute() or ".." in parts:
        return None
    current = root
    for part in parts:
        current = current / part
        if current.is_symlink():
            return None
    if not current.resolve().is_relative_to(root):
        return None
    try:
        fd = os.open(current, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a fifo or a device: never read
            return None
        return fh.read().decode("utf-8", errors="replace")


def _from_store(catalog: Catalog, found: Source, row: dict, source: dict, params: dict) -> None:
    path_column = params.get("path_column", "path")
    content_column = params.get("content_column", "content")
    corpus = catalog.split(source["repo"], source["revision"], "train")
    hit = corpus.find(path_column, row["path"])
    if hit is None:
        found.notes.append(f"no file {row['path']} in {source['repo']}@{source['revision'][:12]}")
        return
    found.text = hit[1].get(content_column)
    found.notes.append(f"row {hit[0]} of {source['repo']}@{source['revision'][:12]}")


def _window(found: Source, row: dict) -> None:
    function = (row.get("function") or "").strip()
    if function and function not in found.text:
        found.notes.append("the file no longer holds this function as extracted")
    lines = found.text.splitlines()
    start = max(0, (row.get("lineno") or 1) - 1 - SOURCE_LINES // 4)
    found.first_line = start + 1
    found.text = "\n".join(lines[start : start + SOURCE_LINES])


def render(chain: Chain) -> str:
    """The chain as HTML (row values escaped: see safe_html.py), from the row asked about back
    to its source."""
    out = []
    for number, link in enumerate(chain.links, 1):
        where = (
            f"{h.code(f'{link.repo}@{link.commit[:12]}')}, {h.text(link.split)} row {link.index:,}"
        )
        out.append(f"<h3>{number}. {h.text(link.stage)} — {where}</h3>")
        shown = [c for c in link.added if c not in ("id", "content_hash")]
        if link.split == "rejected":
            shown = ["drop_reason", "drop_detail", *shown]
        if not shown and not link.changed:
            out.append("<p>kept, unchanged (this stage adds no column)</p>")
        items = [_field(column, link.row.get(column)) for column in shown]
        items += [
            _field(column, link.row.get(column), f"{column} (rewritten by this stage)")
            for column in link.changed
        ]
        inline = [i for i in items if i.startswith("<li>")]
        if inline:
            out.append("<ul>" + "".join(inline) + "</ul>")
        out += [i for i in items if not i.startswith("<li>")]
    if chain.note:
        out.append(f"<p><i>{h.text(chain.note)}</i></p>")
    if chain.source is not None:
        source = chain.source
        out += ["<h3>Source file</h3>", f"<p><b>{h.text(source.where)}</b></p>"]
        if source.url:
            out.append(f"<p>{source.url}</p>")  # built by safe_html.github_link
        if source.notes:
            out.append("<ul>" + "".join(f"<li>{h.text(n)}</li>" for n in source.notes) + "</ul>")
        if source.text is not None:
            out += [f"<p>Lines from {source.first_line}:</p>", h.block(source.text)]
    return "\n".join(out)


def _field(column: str, value, label: str | None = None) -> str:
    """An `<li>` for a short value, a labelled block for a long one."""
    label = label or column
    if value is None:
        return h.item(label, "(none)")
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return h.item(label, ", ".join(h.code(v) for v in value))
    if isinstance(value, (list, dict)):
        return h.block(json.dumps(value, indent=1, ensure_ascii=False, default=str), label)
    if not isinstance(value, str):
        return h.item(label, h.code(value))
    if "\n" not in value and len(value) <= 120:
        return h.item(label, h.text(value))
    return h.block(value, label)
