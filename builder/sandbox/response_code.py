"""The program a model's response holds: its fenced Python blocks, joined in order. `execute`,
`mutate` and the RL reward run exactly this text."""

from __future__ import annotations

import re

_PYTHON_BLOCK = re.compile(r"```(?:python|py|python3)[ \t]*\n(.*?)```", re.S | re.I)


def program_from_response(text: str | None) -> str | None:
    """The fenced Python blocks of a response joined in order, or None if there is none."""
    blocks = [b.strip("\n") for b in _PYTHON_BLOCK.findall(text or "")]
    blocks = [b for b in blocks if b.strip()]
    return "\n\n\n".join(blocks) + "\n" if blocks else None
