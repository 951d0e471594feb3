"""What `execute` and `mutate` share: a row stage that runs programs in the recipe's sandbox,
each verdict cached by the program's text and the sandbox's settings.

A worker opens its sandbox pool and the verdict cache (`work_dir/cache/execute.sqlite`, one
for both steps) on its first chunk and keeps them for its lifetime. Programs run in batches of
`batch_size` and each batch's verdicts are committed as soon as they are in, so `kill -9` loses
at most the batch in flight and a rerun or resume runs nothing twice; Ctrl-C loses nothing
finished. A program the sandbox itself failed on (`infra_error` after its own retries) fails
the chunk: nothing is published, and a rerun retries just those programs.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path
from typing import Any

from builder.errors import StageError
from builder.pipeline.resources import Resources
from builder.pipeline.rows import RowStage
from builder.registry import SANDBOXES
from builder.sandbox import SandboxLimits, get_sandbox
from builder.sandbox.verdict_cache import VerdictCache, program_key, run_and_cache


class SandboxStage(RowStage):
    """A row stage whose params have `timeout_s`, `memory_mb`, `batch_size` and `workers`."""

    def fingerprint_extra(self) -> dict[str, Any]:
        # What can change a verdict, known without starting a worker pool: the backend, its
        # limits and the recipe's options for it, the harness's version and the interpreter the
        # programs run on. (What a backend decides itself, e.g. a docker image recipe, is in
        # each verdict's cache key.)
        import platform

        return {
            "sandbox": self._sandbox_config(),
            "harness": SANDBOXES.load(self.context.sandbox.backend).harness_version,
            "python": platform.python_version(),
        }

    def _sandbox_config(self) -> dict[str, Any]:
        """The backend, its limits and the recipe's options for it (checked by the backend;
        none set: not named, so a step's fingerprint from before options existed holds)."""
        sandbox = self.context.sandbox
        SANDBOXES.load(sandbox.backend).check_options(sandbox.options)
        options = {"options": sandbox.options} if sandbox.options else {}
        return {"backend": sandbox.backend, "limits": dataclasses.asdict(self._limits()), **options}

    def _limits(self) -> SandboxLimits:
        return SandboxLimits.for_timeout(
            self.params.timeout_s, memory_bytes=self.params.memory_mb << 20
        )

    def resources(self) -> Resources:
        """Locally one worker (the runner's process) whose sandbox runs `workers` programs at
        once (0: every core); on a cluster each worker asks for that many CPUs (at least one),
        and its sandbox runs as many programs at once as it was given CPUs."""
        return Resources(cpus=float(max(1, self.params.workers)))

    def _open(self):
        """The worker's sandbox pool and verdict cache, opened on its first chunk."""
        config = self._sandbox_config()
        options: dict[str, Any] = {**self.context.sandbox.options, "limits": self._limits()}
        resources = self.worker_resources
        slots = self.params.workers or resources.cpus  # None: the sandbox's default, every core
        if slots:
            options["workers"] = slots
        key = json.dumps({**config, "workers": slots}, sort_keys=True)
        sandbox = resources.get(
            ("sandbox", key), lambda: get_sandbox(config["backend"], **options), group="sandbox"
        )
        path = str(Path(self.context.work_dir) / "cache" / "execute.sqlite")
        cache = resources.get(
            ("verdicts", path), lambda: resources.open_on_driver(VerdictCache, path)
        )
        return sandbox, cache

    def verdicts(self, programs: list[str | None], stats: Counter) -> list[dict | None]:
        """One verdict per program (None for None), from the cache or run now; counts
        `cache_hits` and `cache_misses` into `stats`."""
        sandbox, cache = self._open()
        fingerprint = sandbox.settings_fingerprint()
        keys = [program_key(p, fingerprint) if p is not None else None for p in programs]
        found = cache.get_many(sorted({k for k in keys if k}))
        missing = {k: p for k, p in zip(keys, programs) if k and k not in found}
        stats["cache_hits"] += len({k for k in keys if k}) - len(missing)
        stats["cache_misses"] += len(missing)
        self._run(sandbox, cache, missing, found)
        return [{**found[k], "key": k} if k else None for k in keys]

    def _run(self, sandbox, cache, missing: dict[str, str], verdicts: dict[str, dict]) -> None:
        for fresh in run_and_cache(sandbox, cache, missing, self.params.batch_size):
            broken = [k for k, v in fresh.items() if v["status"] == "infra_error"]
            if broken:
                raise StageError(
                    f"{self.name}: the {sandbox.name} sandbox failed on {len(broken)} programs "
                    f"({fresh[broken[0]]['error']}); finished verdicts are cached, rerun to retry"
                )
            verdicts.update(fresh)
