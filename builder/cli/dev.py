"""`builder tiny-model`: a tiny model for dry runs and tests."""

from __future__ import annotations

import logging

log = logging.getLogger("builder")


def register(commands) -> None:
    tiny = commands.add_parser("tiny-model", help="write a tiny random causal LM (for tests)")
    tiny.add_argument("output_dir")
    tiny.set_defaults(handler=cmd_tiny_model)


def cmd_tiny_model(args) -> int:
    from builder.engines.tiny_model import build_tiny_model

    path = build_tiny_model(args.output_dir)
    log.info("wrote a tiny random model to %s", path)
    return 0
