"""A sandbox's settings, as a recipe's `sandbox:` gives them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class SandboxConfig:
    backend: str = "local"  # local | docker | e2b
    # The backend's own settings, by its constructor's names (docker: `image`, `network`;
    # e2b: `template`, ...), checked by the backend: an unknown one is a one-line error naming
    # it. The step's limits (timeout, memory, workers) come from its own settings.
    options: dict[str, Any] = field(default_factory=dict)
