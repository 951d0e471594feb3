"""A durable cache of every completion: one SQLite row per (request key, sample index).

The key is a hash of the model and its revision, the prompt, the sampling parameters and the
seed of sample 0 (sample i's seed is seed + i, so the index completes the identity). The engine
backend is deliberately not in the key: the same model and parameters give samples from the
same distribution whichever backend draws them (bit-for-bit equality holds for none of them
across versions or hardware anyway), so a run moved from the in-process vLLM engine to a vLLM
server keeps everything it has. Failed requests are never stored.

Completions are written as they arrive, one transaction per request (its n samples), so a
`kill -9` loses only requests still in flight. In WAL mode with `synchronous=NORMAL` a commit
is an append to the log without an fsync (tens of microseconds), so committing this often
costs nothing next to generation. Several processes (stages, runs, benchmark scripts) can
read and write the file at once; a row written twice keeps the first (INSERT OR IGNORE).
"""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from builder.engines.base import Completion, Sampling

_SCHEMA = """
CREATE TABLE IF NOT EXISTS completions (
    key TEXT NOT NULL,
    sample_index INTEGER NOT NULL,
    text TEXT NOT NULL,
    finish_reason TEXT NOT NULL,
    output_tokens INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    model TEXT NOT NULL,
    created_at REAL NOT NULL,
    logprobs TEXT,
    PRIMARY KEY (key, sample_index)
) WITHOUT ROWID
"""


def request_key(
    model: str, revision: str | None, prompt: str, sampling: Sampling, seed: int
) -> str:
    identity = {
        "model": model,
        "revision": revision,
        "prompt": prompt,
        "sampling": sampling.as_dict(),
        "seed": seed,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


@dataclass
class CacheCounts:
    hits: int = 0  # samples found in the cache
    misses: int = 0  # samples requested from the engine
    stored: int = 0  # samples written (misses that completed without error)


class CompletionCache:
    def __init__(self, path: str | Path, timeout_s: float = 60.0):
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = _connect(self.path, timeout_s)

    def get(self, key: str, indices: Iterable[int]) -> dict[int, Completion]:
        """The cached samples of `key` among `indices`."""
        wanted = list(indices)
        if not wanted:
            return {}
        marks = ",".join("?" * len(wanted))
        rows = self._db.execute(
            "SELECT sample_index, text, finish_reason, output_tokens, prompt_tokens, logprobs "
            f"FROM completions WHERE key = ? AND sample_index IN ({marks})",
            [key, *wanted],
        ).fetchall()
        return {
            index: Completion(
                text, reason, output_tokens=out, prompt_tokens=prompt,
                first_logprobs=json.loads(logprobs) if logprobs else None,
            )
            for index, text, reason, out, prompt, logprobs in rows
        }

    def get_many(self, wanted: list[tuple[str, int]]) -> list[dict[int, Completion]]:
        """For each (key, n): the cached samples of `key` among 0..n-1 (one call for a whole
        chunk's prompts, which matters when the cache is on another machine)."""
        return [self.get(key, range(n)) for key, n in wanted]

    def put(self, key: str, samples: dict[int, Completion], model: str) -> int:
        """Store the samples of one request that did not fail, in one transaction; returns
        how many were stored."""
        now = time.time()
        rows = [
            (key, index, c.text, c.finish_reason, c.output_tokens, c.prompt_tokens, model, now,
             json.dumps(c.first_logprobs) if c.first_logprobs is not None else None)
            for index, c in samples.items()
            if c.ok
        ]  # fmt: skip
        if rows:
            with self._db:  # one transaction
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(
                    "INSERT OR IGNORE INTO completions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
                )
        return len(rows)

    def count(self, model: str | None = None) -> int:
        if model is None:
            return self._db.execute("SELECT COUNT(*) FROM completions").fetchone()[0]
        query = "SELECT COUNT(*) FROM completions WHERE model = ?"
        return self._db.execute(query, (model,)).fetchone()[0]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _connect(path: Path, timeout_s: float) -> sqlite3.Connection:
    """Open (creating if needed) in WAL mode. Switching a new file to WAL takes a lock that
    SQLite does not wait for, so processes opening the same new file at once retry here."""
    deadline = time.monotonic() + timeout_s
    while True:
        db = sqlite3.connect(path, timeout=timeout_s, isolation_level=None)
        try:
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a commit survives the process being killed (not a power cut).
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(_SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(completions)")}
            if "logprobs" not in columns:  # a cache written before first-token logprobs
                try:
                    db.execute("ALTER TABLE completions ADD COLUMN logprobs TEXT")
                except sqlite3.OperationalError as err:  # another process added it first
                    if "duplicate column" not in str(err):
                        raise
            return db
        except sqlite3.OperationalError as err:
            db.close()
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.02 + random.random() * 0.05)
