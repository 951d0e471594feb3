"""`builder`: the parser, logging, and the one place errors become one line and an exit code."""

from __future__ import annotations

import argparse
import logging
import sys

from builder.cli import dev, run, sandbox, space, store
from builder.cli import eval as eval_cli
from builder.errors import BuilderError

log = logging.getLogger("builder")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return args.handler(args) or 0
    except BuilderError as err:
        log.error("%s", err)
        return 2
    except BrokenPipeError:  # `builder store show ... | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        log.error("interrupted: finished chunks are kept, the same command resumes")
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="builder", description="Build code-instruction datasets and models on the Hub."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)
    for module in (run, store, sandbox, dev, eval_cli, space):
        module.register(commands)
    return parser


if __name__ == "__main__":
    sys.exit(main())
