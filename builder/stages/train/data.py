"""What the `train` step reads, and the conversations it trains on.

The input is a stage of the recipe, a dataset repository (`repo` or `repo@revision`: the
store's, else the Hub's, e.g. `bigcode/self-oss-instruct-sc2-exec-filter-50k` as published), or
a local `.jsonl` / `.parquet` file, pinned like any input (a file by a digest of its bytes).
Rows are conversations (`messages`: role/content turns) or `instruction`/`response` pairs,
which become a user turn and an assistant turn, or raw `prompt`/`completion` text (completion
mode, no chat template: the loss covers the completion and an end-of-text token; what teaches
the tiny model the pipeline's own prompt formats); anything else is a one-line error naming
the columns found. A row that is not a usable conversation (no assistant turn, a role other than
system/user/assistant, text that is not a string, an empty or blank user or assistant turn:
a model trained on empty answers learns to answer with end-of-text) is left out and counted by
reason in the card; an input with no usable row is an error.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from builder.errors import StageError
from builder.pipeline.input_sources import HubDatasetInput, InputSource
from builder.pipeline.rows import Row
from builder.stages.train.params import is_data_file
from builder.store import split_ref

ROLES = ("system", "user", "assistant")


class FileInput(InputSource):
    """A local `.jsonl` or `.parquet` file, pinned by the SHA-256 of its bytes, read whole with
    pyarrow (a training set fits in memory: 50k pairs are about 100 MB)."""

    def __init__(self, path: str):
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise StageError(f"training data file not found: {path}")
        data = self.path.read_bytes()
        # The file's name only (where the user keeps it stays private); the digest pins it.
        digest = hashlib.sha256(data).hexdigest()[:40]
        self.ref = {"kind": "file", "path": self.path.name, "revision": digest}
        self.table = self._read(data)
        self.columns, self.num_rows = self.table.column_names, self.table.num_rows

    def _read(self, data: bytes):
        import pyarrow as pa
        import pyarrow.json
        import pyarrow.parquet

        try:
            if self.path.suffix == ".parquet":
                return pyarrow.parquet.read_table(self.path)
            if not data.strip():
                return pa.table({})
            return pyarrow.json.read_json(self.path)
        except pa.ArrowInvalid as err:
            raise StageError(f"{self.path}: {str(err).splitlines()[0]}") from None

    def iter_rows(self) -> Iterator[Row]:
        for batch in self.table.to_batches(max_chunksize=1024):
            yield from batch.to_pylist()


def open_training_input(inputs, spec: str, split: str) -> InputSource:
    """The input named by `spec` (see the module docstring), pinned, its columns checked."""
    if is_data_file(spec):
        source = FileInput(spec)
    elif "/" in split_ref(spec)[0]:
        repo, revision = split_ref(spec)
        if inputs.store.repo_exists(repo):
            source = inputs.dataset(repo, revision, split)
        elif inputs.store.uri == "hf":
            raise StageError(f"dataset '{repo}' not found on the Hub")
        else:
            source = HubDatasetInput(repo, None, split, None if revision == "main" else revision)
    else:
        source = inputs.stage(spec)
    if source.num_rows == 0:
        raise StageError(f"training input {source.describe()} has no rows")
    row_format(source.columns, source.describe())
    return source


def row_format(columns: list[str], where: str) -> str:
    """The kind of rows, "messages", "pairs" or "completions"; a one-line error naming the
    columns otherwise."""
    if "messages" in columns:
        return "messages"
    if "instruction" in columns and "response" in columns:
        return "pairs"
    if "prompt" in columns and "completion" in columns:
        return "completions"
    raise StageError(
        f"training input {where} has neither conversations (a `messages` column) nor "
        f"`instruction`/`response` pairs (nor `prompt`/`completion` text); its columns: "
        f"{', '.join(columns) or 'none'}"
    )


def conversations(rows: Iterator[Row], kind: str, limit: int | None) -> tuple[list, Counter]:
    """The usable conversations of `rows` (the first `limit`; role/content turns, or for
    completions {prompt, completion}), and the left-out rows by reason."""
    kept: list = []
    dropped: Counter = Counter()
    for row in rows:
        if limit is not None and len(kept) + sum(dropped.values()) >= limit:
            break
        if kind == "completions":
            prompt, completion = row.get("prompt"), row.get("completion")
            if not (isinstance(prompt, str) and isinstance(completion, str)):
                dropped["completion_not_text"] += 1
            elif not completion.strip():
                dropped["empty_completion"] += 1
            else:
                kept.append({"prompt": prompt, "completion": completion})
            continue
        if kind == "pairs":
            messages = [
                {"role": "user", "content": row.get("instruction")},
                {"role": "assistant", "content": row.get("response")},
            ]
        else:
            messages = row.get("messages")
        reason = _problem(messages)
        if reason:
            dropped[reason] += 1
        else:
            kept.append([{"role": m["role"], "content": m["content"]} for m in messages])
    return kept, dropped


def _problem(messages) -> str | None:
    if not isinstance(messages, list) or not messages:
        return "no_messages"
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            return "unknown_role"
        if not isinstance(message.get("content"), str):
            return "content_not_text"
        if message["role"] != "system" and not message["content"].strip():
            return f"empty_{message['role']}_turn"
    if not any(m["role"] == "assistant" for m in messages):
        return "no_assistant_turn"
    if any(m["role"] == "system" for m in messages[1:]):
        return "system_turn_not_first"
    return None
