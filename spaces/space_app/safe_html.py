"""Row values as text in HTML: everything a row holds (a crawled docstring, generated code, a
path) is escaped, so that it shows as the characters it is and never as a link, an image or
markup. The Provenance and Evaluation views are built from these pieces only; the Data tab's
tables show values as text already.
"""

from __future__ import annotations

from html import escape
from urllib.parse import quote


def text(value) -> str:
    return escape(str(value), quote=True)


def code(value) -> str:
    return f"<code>{text(value)}</code>"


def block(value, label: str | None = None) -> str:
    """A preformatted block (code, long text), under a bold label if given."""
    head = f"<p><b>{text(label)}</b></p>" if label else ""
    return f"{head}<pre><code>{text(str(value).rstrip())}</code></pre>"


def item(label: str, value_html: str) -> str:
    return f"<li><b>{text(label)}</b>: {value_html}</li>"


def github_link(repo: str, path: str, line: int) -> str:
    """A link to a file in a GitHub repository; the row's parts only ever end up in its path."""
    url = f"https://github.com/{quote(repo)}/blob/HEAD/{quote(path)}#L{int(line)}"
    return (
        f'<a href="{text(url)}" target="_blank" rel="noopener noreferrer nofollow">{text(url)}</a>'
    )
