"""A durable cache of sandbox verdicts, keyed by the program's text and the sandbox settings.

SQLite in WAL mode: each batch of verdicts is committed as soon as the sandbox returns it, so a
crash or `kill -9` loses at most the batch in flight, and a rerun or resume executes nothing
twice. Infrastructure failures are never stored: they are the sandbox's fault, not a verdict.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from builder.sandbox.base import Program

_SCHEMA = """
CREATE TABLE IF NOT EXISTS verdicts (
    key TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    duration_s REAL NOT NULL,
    exit_code INTEGER,
    error TEXT NOT NULL,
    stdout TEXT NOT NULL,
    stderr TEXT NOT NULL
)
"""
_FIELDS = ("status", "duration_s", "exit_code", "error", "stdout", "stderr")
_KEPT_OUTPUT = 1000  # characters of stdout/stderr kept per verdict


def verdict_record(result, stdout_tail: bool = False) -> dict:
    """A sandbox result as the cache keeps it: the start of stdout (or its end, `stdout_tail`,
    for a reader of its last line) and the end of stderr (the end of a traceback says most)."""
    stdout = result.stdout[-_KEPT_OUTPUT:] if stdout_tail else result.stdout[:_KEPT_OUTPUT]
    return {
        "status": result.status,
        "duration_s": round(result.duration_s, 4),
        "exit_code": result.exit_code,
        "error": result.error[:500],
        "stdout": stdout,
        "stderr": result.stderr[-_KEPT_OUTPUT:],
    }


def run_and_cache(
    sandbox, cache: VerdictCache | None, missing: dict[str, str], batch_size: int,
    stdout_tail: bool = False,
) -> Iterator[dict[str, dict]]:
    """Run `missing` (key -> program text) in batches of `batch_size`; each batch's verdicts
    are cached (even when interrupted: what finished is kept, a rerun starts from there; never
    an `infra_error`) and then given, key -> verdict record. The caller decides what a failure
    of the sandbox itself means."""
    items = list(missing.items())
    for start in range(0, len(items), batch_size):
        batch = [Program(id=key, code=code) for key, code in items[start : start + batch_size]]
        fresh: dict[str, dict] = {}
        try:
            for result in sandbox.run_iter(batch):
                fresh[result.id] = verdict_record(result, stdout_tail)
        finally:
            if cache is not None:
                cache.put_many(fresh)
        yield fresh


def program_key(code: str, settings_fingerprint: str) -> str:
    return hashlib.sha256(f"{settings_fingerprint}\0{code}".encode()).hexdigest()


class VerdictCache:
    def __init__(self, path: str | Path):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, timeout=60)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(_SCHEMA)
        self.db.commit()

    def get_many(self, keys: list[str]) -> dict[str, dict]:
        found = {}
        for start in range(0, len(keys), 500):  # SQLite caps the number of parameters
            batch = keys[start : start + 500]
            marks = ",".join("?" * len(batch))
            query = f"SELECT key, {', '.join(_FIELDS)} FROM verdicts WHERE key IN ({marks})"
            for key, *values in self.db.execute(query, batch):
                found[key] = dict(zip(_FIELDS, values))
        return found

    def put_many(self, verdicts: dict[str, dict]) -> None:
        rows = [
            (key, *(v[f] for f in _FIELDS))
            for key, v in verdicts.items()
            if v["status"] != "infra_error"
        ]
        with self.db:
            self.db.executemany(
                f"INSERT OR REPLACE INTO verdicts (key, {', '.join(_FIELDS)}) "
                f"VALUES (?, {', '.join('?' * len(_FIELDS))})",
                rows,
            )

    def close(self) -> None:
        self.db.close()
