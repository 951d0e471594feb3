"""The `builder` command: one module per group of subcommands, each with a `register`.
Heavy libraries are imported by the handlers that need them, so `builder --help` is fast."""

from builder.cli.main import main

__all__ = ["main"]
