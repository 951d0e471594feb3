"""The e2b backend's pool: slot threads that each own one E2B sandbox and run batches on it.

See builder.sandbox.e2b for the design; `_e2b_batch` for what a batch is. Everything that
reaches a log or a result goes through `Pool.scrub`, which masks the API key.
"""

from __future__ import annotations

import logging
import queue
import random
import shlex
import threading
import time

from builder.sandbox import _e2b_batch as batches
from builder.sandbox._pool import CLOSED, Job, cancel_queued
from builder.sandbox.base import ExecResult, SandboxError

log = logging.getLogger("builder.sandbox.e2b")

MAX_BACKOFF_S = 60.0
PREFLIGHT = (
    "command -v unshare && command -v setpriv && {python} -c 'import sys; print(sys.version)'"
)


class Fatal(Exception):
    """Retrying cannot help (bad key, unusable template): run() raises it as SandboxError."""


class RateLimited(Exception):
    pass


class Pool:
    """What the slots share: the queue, the settings, and the registry of live sandboxes."""

    def __init__(
        self, *, sdk, api_key, template, limits, batch_size, sandbox_timeout_s, infra_retries,
        rate_limit_retries, backoff_s, python, harness_dir,
    ) -> None:  # fmt: skip
        self.sdk, self.template, self.limits = sdk, template, limits
        self._api_key = api_key
        self.batch_size, self.sandbox_timeout_s = batch_size, sandbox_timeout_s
        self.infra_retries, self.rate_limit_retries = infra_retries, rate_limit_retries
        self.backoff_s, self.python, self.harness_dir = backoff_s, python, harness_dir
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.closing = threading.Event()
        self.lock = threading.Lock()
        self.live: set = set()

    def scrub(self, text: str) -> str:
        """Error text with the API key masked: it must reach no log and no result."""
        return text.replace(self._api_key, "***") if self._api_key else text

    def create(self):
        sandbox = self.sdk.create(
            template=self.template, timeout=self.sandbox_timeout_s,
            allow_internet_access=False, metadata={"purpose": "builder-sandbox"},
            api_key=self._api_key,
        )  # fmt: skip
        with self.lock:
            if not self.closing.is_set():
                self.live.add(sandbox)
                return sandbox
        self._kill_now(sandbox)  # close() came while it was being created
        raise Fatal("the sandbox was closed")

    def kill(self, sandbox) -> None:
        """Kill a live sandbox; once only, whoever (its slot, close()) asks first."""
        with self.lock:
            if sandbox not in self.live:
                return
            self.live.discard(sandbox)
        self._kill_now(sandbox)

    def _kill_now(self, sandbox) -> None:
        try:
            sandbox.kill()
        except Exception as exc:  # noqa: BLE001 - it may be gone already; E2B's timeout remains
            log.warning(
                "could not kill E2B sandbox %s: %s", sandbox.sandbox_id, self.scrub(str(exc))
            )

    def backoff(self, attempt: int) -> None:
        delay = min(MAX_BACKOFF_S, self.backoff_s * 2**attempt) * random.uniform(0.5, 1.0)
        self.closing.wait(delay)  # close() cuts the wait short


def shutdown(pool: Pool, slots: list[Slot]) -> None:
    """Cancel what was not started, kill every live sandbox (ending running commands), stop."""
    pool.closing.set()
    cancel_queued(pool.jobs)
    for _ in slots:
        pool.jobs.put(None)
    with pool.lock:
        live = list(pool.live)
    for sandbox in live:
        pool.kill(sandbox)
    for slot in slots:
        slot.thread.join(timeout=60)


class Slot:
    """One host thread with at most one E2B sandbox, running batches from the queue."""

    def __init__(self, pool: Pool, index: int) -> None:
        self.pool, self.index = pool, index
        self.sandbox = None
        self.expires_at = 0.0
        self.thread = threading.Thread(target=self._loop, name=f"e2b-slot-{index}", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        try:
            while (batch := self._take()) is not None:
                try:
                    self._run(batch)
                except Exception as exc:  # noqa: BLE001 - a bug here must not hang run()
                    error = (
                        exc
                        if isinstance(exc, SandboxError)
                        else SandboxError(self.pool.scrub(f"e2b sandbox: {exc!r}"))
                    )
                    for job in batch:
                        if not job.future.done():
                            job.future.set_exception(error)
        finally:
            self._discard()

    def _take(self) -> list[Job] | None:
        first = self.pool.jobs.get()
        if first is None:
            return None
        batch = [first]
        while len(batch) < self.pool.batch_size:
            try:
                job = self.pool.jobs.get_nowait()
            except queue.Empty:
                break
            if job is None:
                self.pool.jobs.put(None)  # ours comes after this batch
                break
            batch.append(job)
        return batch

    def _run(self, batch: list[Job]) -> None:
        """Run the batch until every job has a result; rerun what did not get one."""
        pending, waits = batch, 0
        while pending:
            if self.pool.closing.is_set():
                for job in pending:
                    job.future.set_result(infra_result(job, CLOSED))
                return
            try:
                pending = self._attempt(pending)
                waits = 0
            except RateLimited as exc:
                if waits < self.pool.rate_limit_retries:
                    log.info("E2B rate limit, backing off (%d): %s", waits + 1, exc)
                    self.pool.backoff(waits)
                    waits += 1
                    continue
                waits = 0
                self._count_failure(pending[0], f"rate limited: {exc}")
            except Fatal as exc:
                if self.pool.closing.is_set():
                    continue  # the check above ends the batch
                raise SandboxError(str(exc)) from None
            except Exception as exc:  # noqa: BLE001 - the SDK's errors are many; all are infra
                self._discard()
                self._count_failure(pending[0], f"{type(exc).__name__}: {exc}")
            pending = [job for job in pending if not job.future.done()]

    def _attempt(self, pending: list[Job]) -> list[Job]:
        """One batch run; returns the jobs that still need one."""
        sandbox = self._sandbox()
        pool = self.pool
        path = f"{pool.harness_dir}/batch-{self.index}.json"  # overwritten by this slot only
        timeout = batches.command_timeout(len(pending), pool.limits)
        if self.expires_at - time.monotonic() < timeout + 60:
            lifetime = max(pool.sandbox_timeout_s, int(timeout) + 120)
            self._call(sandbox.set_timeout, lifetime)
            self.expires_at = time.monotonic() + lifetime
        payload = batches.batch_payload([job.program.code for job in pending], pool.limits)
        self._call(sandbox.files.write, path, payload, user="root")
        command = batches.driver_command(
            path, pool.limits, harness_dir=pool.harness_dir, python=pool.python
        )
        chunks: list[str] = []
        failure = ""
        try:
            self._call(
                sandbox.commands.run, command, user="root", timeout=timeout,
                on_stdout=chunks.append,
            )  # fmt: skip
        except pool.sdk.command_exit as exc:
            failure = (
                f"driver exit status {getattr(exc, 'exit_code', '?')}: "
                + str(getattr(exc, "stderr", "") or "")[-300:]
            )
        except RateLimited:
            raise
        except Exception as exc:  # noqa: BLE001 - keep what it printed, then replace it
            failure = f"{type(exc).__name__}: {exc}"
            self._discard()
        return self._collect(pending, batches.parse_output("".join(chunks)), failure)

    def _collect(self, pending, out: batches.BatchOutput, failure: str) -> list[Job]:
        if out.fatal:
            raise Fatal(f"e2b sandbox driver: {out.fatal}")
        last = max(out.results, default=-1)
        for index, job in enumerate(pending):
            record = out.results.get(index)
            if record is not None and record["status"] != "infra_error":
                job.future.set_result(batches.to_result(job.program.id, record))
            elif record is not None:
                self._count_failure(job, record.get("error", ""))
            elif index == last + 1 and not out.recycled:  # it was running when the run ended
                self._count_failure(job, failure or "the batch driver stopped early")
        return [job for job in pending if not job.future.done()]

    def _count_failure(self, job: Job, error: str) -> None:
        error = " ".join(self.pool.scrub(error).split())  # one line
        job.attempts += 1
        log.warning("e2b infra error on %s (attempt %d): %s", job.program.id, job.attempts, error)
        if job.attempts > self.pool.infra_retries:
            job.future.set_result(infra_result(job, error))

    def _sandbox(self):
        """This slot's E2B sandbox, created, given the harness and checked if need be."""
        if self.sandbox is not None:
            return self.sandbox
        pool = self.pool
        sandbox = self._call(pool.create)
        try:
            files = batches.harness_files(pool.harness_dir)
            self._call(sandbox.files.write_files, files, user="root")
            self._call(sandbox.commands.run, PREFLIGHT.format(python=shlex.quote(pool.python)),
                       user="root")  # fmt: skip
        except pool.sdk.command_exit as exc:
            pool.kill(sandbox)
            raise Fatal(
                f"E2B template {pool.template!r} lacks unshare, setpriv or {pool.python}"
                f" (exit status {getattr(exc, 'exit_code', '?')})"
            ) from None
        except BaseException:  # half set up: never used, never left running
            pool.kill(sandbox)
            raise
        self.sandbox, self.expires_at = sandbox, time.monotonic() + pool.sandbox_timeout_s
        return sandbox

    def _call(self, method, *args, **kwargs):
        """An SDK call, with its rate-limit and authentication errors told apart."""
        try:
            return method(*args, **kwargs)
        except self.pool.sdk.rate_limited as exc:
            raise RateLimited(self.pool.scrub(str(exc))) from None
        except self.pool.sdk.auth_failed as exc:
            raise Fatal(self.pool.scrub(f"E2B refused the API key: {exc}")) from None

    def _discard(self) -> None:
        if self.sandbox is not None:
            sandbox, self.sandbox = self.sandbox, None
            self.pool.kill(sandbox)


def infra_result(job: Job, error: str) -> ExecResult:
    return ExecResult(id=job.program.id, status="infra_error", error=error[:300])
