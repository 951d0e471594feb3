"""`builder run` and `builder status`: a recipe's steps, run or reported. The handlers import
the pipeline when they run, so that `builder --help` loads none of it (0.1 s instead of 0.4 s)."""

from __future__ import annotations

import argparse
import json

from builder.errors import BuilderError


def register(commands) -> None:
    run = commands.add_parser("run", help="run a recipe's steps, publishing each")
    run.add_argument("recipe")
    run.add_argument("--only", help="comma-separated steps to run, in recipe order")
    add_set(run)
    run.set_defaults(handler=cmd_run)

    status = commands.add_parser("status", help="what each step of a recipe has published")
    status.add_argument("recipe")
    status.add_argument("--json", action="store_true", help="a JSON list, in recipe order")
    add_set(status)
    status.set_defaults(handler=cmd_status)


def add_set(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="overrides",
        help="override a recipe key, e.g. --set stages.extract.limit=100 (repeatable)",
    )


def cmd_run(args) -> int:
    from builder.pipeline.recipe import load_recipe
    from builder.pipeline.run import run_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    only = None
    if args.only is not None:
        only = [s.strip() for s in args.only.split(",") if s.strip()]
        if not only:
            raise BuilderError("--only names no stage")
    run_recipe(recipe, only)
    return 0


def cmd_status(args) -> int:
    from builder.pipeline.recipe import load_recipe
    from builder.pipeline.run import recipe_status

    entries = recipe_status(load_recipe(args.recipe, args.overrides))
    if args.json:
        print(json.dumps(entries, indent=1))
        return 0
    header = ("stage", "kind", "repo", "revision", "rows", "published", "input", "current")
    table = [header] + [
        tuple(
            "-" if e[k] is None else str(e[k])[:12] if k == "revision" else str(e[k])
            for k in header
        )
        for e in entries
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0
