"""Sandboxes that run generated programs with their tests; see `base` for the verdicts.

    with get_sandbox("local", limits=SandboxLimits(timeout_s=5)) as sandbox:
        results = sandbox.run([Program("t1", code)])

Backends are registered in `builder.registry.SANDBOXES` and imported only when asked for, so a
missing optional dependency of one backend never breaks the others.
"""

from __future__ import annotations

from typing import Any

from builder.registry import SANDBOXES
from builder.sandbox.base import ExecResult, Program, Sandbox, SandboxError, SandboxLimits

__all__ = ["ExecResult", "Program", "Sandbox", "SandboxError", "SandboxLimits", "get_sandbox"]


def get_sandbox(backend: str, **options: Any) -> Sandbox:
    """Build the sandbox `backend` with its keyword options (e.g. limits=SandboxLimits())."""
    return SANDBOXES.create(backend, **options)
