"""The `e2b` sandbox: programs run in E2B cloud sandboxes (Firecracker microVMs), in batches.

Needs `pip install e2b-code-interpreter` (imported here only) and E2B_API_KEY.

Where things run
    A bounded pool (`workers`, default 4) of host threads, each owning at most one E2B sandbox
    at a time, created with `Sandbox.create(template, timeout, allow_internet_access=False)`
    and reused for many batches: creation is slow and rate-limited. Into each sandbox the
    local backend's harness (`_worker.py`, `_child.py`) and `_e2b_driver.py` are uploaded once
    (`files.write_files`, as root). A batch (up to `batch_size` programs) is one JSON file
    (`files.write`) and one `commands.run` as root: `unshare` gives the driver fresh PID, mount
    and IPC namespaces (PID 1 there, its own /proc, tmpfs /tmp and /dev/shm), `setpriv` drops
    it to an unprivileged uid with no capabilities, and the driver runs each program through
    `_worker.run_one`: the local backend's verdicts and earned-pass protocol, unchanged. It
    prints one JSON line per result (see `_e2b_batch`).

    `run_code` (the Jupyter kernel of the code interpreter) is NOT used: it runs every cell in
    one long-lived kernel, catches SystemExit, and shares state between programs.

Failures and limits of E2B
    - Rate limits (RateLimitException, ServiceBusyException) on creation or on a call: back off
      exponentially (`backoff_s`, doubling, at most 60 s) and try again, `rate_limit_retries`
      times, before counting an infrastructure failure. The SDK also retries 429s itself.
    - Anything else from the SDK (timeouts, a sandbox that vanished, connection errors): the
      E2B sandbox is killed and replaced; results already printed are kept, the program that
      was running is retried `infra_retries` times before it is reported as infra_error.
    - A bad API key, or a template without python3/unshare/setpriv: run() raises SandboxError.
    - Sandboxes are always killed: when a slot replaces one, when its thread ends, on close(),
      on garbage collection and at interpreter exit (also after KeyboardInterrupt, which
      reaches `with` or the finalizer). A process killed with SIGKILL leaves its sandboxes to
      E2B's own `sandbox_timeout_s`, after which E2B kills them.
    - The API key goes to the SDK only: never into a sandbox, and it is masked in every error
      message and log line this backend writes.

What this does NOT protect against, or differs from the local backend
    - The VM's memory is the template's (the default templates are small): a program under
      its RLIMIT_AS can still exhaust the VM, which then fails as infra_error.
    - The interpreter is the template's python3, not the host's: settings() names the template,
      not a Python version, so pin the template to pin verdicts.
    - Programs of one batch can read each other's code (the batch file); a program that
      deliberately inspects the interpreter can forge a pass (as with the local backend).
    - Not tested against the live service in this repository's CI (no key there); the live
      tests run when E2B_API_KEY is set.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from builder.sandbox import _e2b_batch as batches
from builder.sandbox._e2b_pool import Pool, Slot, shutdown
from builder.sandbox._pool import PooledSandbox
from builder.sandbox.base import SandboxError, SandboxLimits

SDK_MISSING = "the e2b sandbox needs the E2B SDK: pip install e2b-code-interpreter"
KEY_MISSING = "the e2b sandbox needs an E2B API key: set E2B_API_KEY"


@dataclass(frozen=True)
class E2BApi:
    """The part of the E2B SDK this backend uses (tests give a fake with the same methods)."""

    create: Callable[..., Any]  # Sandbox.create(template=, timeout=, allow_internet_access=, ...)
    default_template: str
    rate_limited: tuple[type[BaseException], ...]
    auth_failed: tuple[type[BaseException], ...]
    command_exit: type[BaseException]  # commands.run raises it on a non-zero exit status


def load_sdk() -> E2BApi:
    try:
        import e2b
        from e2b_code_interpreter import Sandbox as CodeInterpreterSandbox
    except ImportError:
        raise SandboxError(SDK_MISSING) from None
    return E2BApi(
        create=CodeInterpreterSandbox.create,
        default_template=CodeInterpreterSandbox.default_template,
        # ServiceBusyException (503: no capacity now) is recent; older SDKs lack it.
        rate_limited=tuple(
            getattr(e2b, name)
            for name in ("RateLimitException", "ServiceBusyException")
            if hasattr(e2b, name)
        ),
        auth_failed=(e2b.AuthenticationException,),
        command_exit=e2b.CommandExitException,
    )


class E2BSandbox(PooledSandbox):
    """The e2b backend (see the module docstring). Checks the SDK and the key at once; creates
    E2B sandboxes only when programs arrive.

    workers: E2B sandboxes at once. batch_size: programs per `commands.run`. template: the E2B
    template (default: the code interpreter's). sandbox_timeout_s: lifetime E2B enforces on each
    sandbox (extended while it works). python: the interpreter command in the template.
    """

    name = "e2b"

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        *,
        workers: int = 4,
        batch_size: int = 16,
        template: str | None = None,
        api_key: str | None = None,
        sandbox_timeout_s: int = 900,
        infra_retries: int = 2,
        rate_limit_retries: int = 8,
        backoff_s: float = 2.0,
        python: str = "python3",
        harness_dir: str = batches.HARNESS_DIR,
        sdk: E2BApi | None = None,
    ) -> None:
        super().__init__(limits)
        if workers < 1 or batch_size < 1 or infra_retries < 0 or rate_limit_retries < 0:
            raise SandboxError("e2b sandbox: workers and batch_size >= 1, retries >= 0")
        self._sdk = sdk or load_sdk()
        key = api_key or os.environ.get("E2B_API_KEY", "")
        if not key:
            raise SandboxError(KEY_MISSING)
        self.template = template or self._sdk.default_template
        self.workers, self.batch_size = workers, batch_size
        self._pool = Pool(
            sdk=self._sdk, api_key=key, template=self.template, limits=self.limits,
            batch_size=batch_size, sandbox_timeout_s=sandbox_timeout_s,
            infra_retries=infra_retries, rate_limit_retries=rate_limit_retries,
            backoff_s=backoff_s, python=python, harness_dir=harness_dir,
        )  # fmt: skip
        self._jobs = self._pool.jobs
        self._slots = [Slot(self._pool, i) for i in range(workers)]
        self._finalizer = weakref.finalize(self, shutdown, self._pool, self._slots)

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "harness": self.harness_version, "template": self.template}

    def live_sandbox_ids(self) -> list[str]:
        """Ids of the E2B sandboxes alive now (for tests and diagnostics)."""
        with self._pool.lock:
            return sorted(sb.sandbox_id for sb in self._pool.live)
