"""`builder tiny-model`: a tiny model for dry runs and tests."""

from __future__ import annotations

import logging

from builder.errors import BuilderError

log = logging.getLogger("builder")


def register(commands) -> None:
    tiny = commands.add_parser("tiny-model", help="write a tiny random causal LM (for tests)")
    tiny.add_argument("output_dir")
    tiny.set_defaults(handler=cmd_tiny_model)


def cmd_tiny_model(args) -> int:
    from builder.engines.tiny_model import build_tiny_model

    try:
        path = build_tiny_model(args.output_dir)
    except OSError as err:
        where = err.filename or args.output_dir
        raise BuilderError(f"cannot write the tiny model to {where}: {err.strerror}") from None
    log.info("wrote a tiny random model to %s", path)
    return 0
