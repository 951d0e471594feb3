"""`builder store log|show|export|push|verify`: read any published revision (a dataset, a model
or evaluation results), copy a repository's history to another store, and check (and repair) a
local store. Every read is verified by the store; a damaged file is one line naming it. `export`
writes its output atomically: a failed export leaves an existing file as it was."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from builder.errors import BuilderError, StoreError
from builder.pipeline.publish import manifest_kind, read_manifest
from builder.pipeline.shards import iter_parquet_rows, split_files
from builder.store import DamagedStore, Store, open_store, split_ref
from builder.store.files import write_atomic

log = logging.getLogger("builder")


def register(commands) -> None:
    store = commands.add_parser("store", help="look at repositories in a store")
    store_commands = store.add_subparsers(dest="store_command", required=True)
    for name, help_text, handler in (
        ("log", "commits of a repository (main, then its other branches' heads)", cmd_log),
        ("show", "a revision's card and first rows (or files, for a model)", cmd_show),
        ("export", "all rows of a revision's split as JSON lines", cmd_export),
    ):
        sub = store_commands.add_parser(name, help=help_text)
        sub.add_argument("ref", metavar="REPO[@REV]")
        if name == "export":
            sub.add_argument("output", metavar="FILE.jsonl")
        if name in ("show", "export"):
            sub.add_argument(
                "--split", help="train (default), rejected, or an evaluation's benchmark config"
            )
        if name == "show":
            sub.add_argument("--rows", type=int, default=5, help="how many rows to show")
        sub.add_argument("--store", required=True, help="'hf' or 'local:DIR'")
        sub.add_argument("--model", action="store_true", help="a model repository")
        sub.set_defaults(handler=handler)

    push = store_commands.add_parser("push", help="copy a repository's commits to another store")
    push.add_argument("repo", metavar="REPO")
    push.add_argument("--store", required=True, help="the source store, e.g. local:DIR")
    push.add_argument("--to", required=True, help="the target store, e.g. hf")
    push.add_argument("--to-repo", help="the repository's name there (default: the same)")
    push.add_argument("--public", action="store_true", help="create it public (default private)")
    push.add_argument("--model", action="store_true", help="a model repository")
    push.set_defaults(handler=cmd_push)

    verify = store_commands.add_parser(
        "verify", help="check every file of a repository in a local store; --repair fixes"
    )
    verify.add_argument("repo", metavar="REPO")
    verify.add_argument("--store", required=True, help="a local store, 'local:DIR'")
    verify.add_argument("--model", action="store_true", help="a model repository")
    verify.add_argument(
        "--repair",
        action="store_true",
        help="set aside damaged files, restore damaged branches (nothing is deleted)",
    )
    verify.set_defaults(handler=cmd_verify)


def _open(args) -> Store:
    return open_store(args.store, "model" if args.model else "dataset")


def cmd_log(args) -> int:
    store = _open(args)
    repo, revision = split_ref(args.ref)
    for commit in store.log(repo, revision):
        print(f"{commit.id}  {commit.created_at}  {commit.title}")
    if "@" not in args.ref:  # the repository as a whole: its other branches too (checkpoints)
        branches = {b: c for b, c in store.refs(repo).branches.items() if b != "main"}
        if branches:
            print("\nother branches:")
        for branch, head in sorted(branches.items()):
            commit = store.log(repo, head)[0]
            print(f"{commit.id}  {commit.created_at}  {commit.title}  [{branch}]")
    return 0


def cmd_show(args) -> int:
    store = _open(args)
    repo, revision = split_ref(args.ref)
    commit = store.resolve(repo, revision)
    card = store.read_text(repo, commit, "README.md") or "(no card)"
    lines = [f"{repo}@{commit}", "", card.rstrip(), ""]
    manifest = read_manifest(store, repo, commit)
    if store.repo_type == "model" or manifest_kind(manifest) == "model":
        lines += ["## Files", ""] + [f"- {f}" for f in store.list_files(repo, commit)]
    else:
        split = _split(args.split, manifest)
        lines += [f"## First {args.rows} rows of '{split}'", ""]
        for index, row in enumerate(_rows(store, repo, commit, split, manifest)):
            if index >= args.rows:
                break
            lines.append(json.dumps(row, ensure_ascii=False, default=str)[:2000])
    print("\n".join(lines))
    return 0


def cmd_export(args) -> int:
    output = Path(args.output)
    if output.is_dir():
        raise BuilderError(f"cannot export to {output}: it is a directory; name a file")
    if not output.parent.is_dir():
        raise BuilderError(f"cannot export to {output}: folder {output.parent} does not exist")
    store = _open(args)
    repo, revision = split_ref(args.ref)
    commit = store.resolve(repo, revision)
    manifest = read_manifest(store, repo, commit)
    split = _split(args.split, manifest)
    rows = _rows(store, repo, commit, split, manifest)
    count = 0

    def write(handle) -> None:
        nonlocal count
        for row in rows:
            handle.write((json_line(row) + "\n").encode())
            count += 1

    write_atomic(output, write)
    log.info("wrote %d rows to %s", count, output)
    return 0


def cmd_push(args) -> int:
    from builder.store.push import push_repo

    repo_type = "model" if args.model else "dataset"
    target_repo = args.to_repo or args.repo
    source, target = open_store(args.store, repo_type), open_store(args.to, repo_type)
    count = push_repo(source, target, args.repo, target_repo, not args.public)
    log.info("%d new commits pushed to %s (%s)", count, target_repo, args.to)
    return 0


def cmd_verify(args) -> int:
    from builder.store.local import LocalStore
    from builder.store.repair import verify_repo

    store = _open(args)
    if not isinstance(store, LocalStore):
        raise StoreError("store verify checks local stores ('local:DIR'); the Hub checks its own")
    found = verify_repo(store, args.repo, repair=args.repair)
    for line in found.problems:
        print(f"damaged: {line}")
    for line in found.repairs:
        print(f"repaired: {line}")
    for line in found.unrepaired:
        print(f"not repaired: {line}")
    if not found.problems:
        print(f"{args.repo}: every ref, commit record and file is intact")
        return 0
    if not args.repair:
        raise DamagedStore(f"{args.repo}: {_count(found.problems)}; --repair fixes what it can")
    if found.unrepaired:
        raise DamagedStore(f"{args.repo}: {_count(found.unrepaired)} left to repair by hand")
    return 0


def _count(problems: list[str]) -> str:
    return f"{len(problems)} problem" + ("" if len(problems) == 1 else "s")


# Characters that str.splitlines() (and so many a JSON Lines reader) breaks lines at, which
# JSON leaves raw in strings: escaped, so that one row is always one line.
_LINE_BREAKS = str.maketrans({"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"})


def json_line(row: dict) -> str:
    return json.dumps(row, ensure_ascii=False, default=str).translate(_LINE_BREAKS)


def _split(asked: str | None, manifest: dict | None) -> str:
    """The split asked for, else `train`, else (evaluation results) the first benchmark's."""
    splits = list((manifest or {}).get("splits", {})) or ["train", "rejected"]
    split = asked or ("train" if "train" in splits else splits[0])
    if manifest is not None and split not in splits:
        raise BuilderError(f"no split '{split}' in this revision (it has: {', '.join(splits)})")
    return split


def _rows(store: Store, repo: str, commit: str, split: str, manifest: dict | None):
    """The split's rows; a file that is not readable parquet is one line naming it."""
    import pyarrow as pa

    names = split_files(store, repo, commit, split, manifest)
    local = store.fetch(repo, commit, names) if names else {}
    for name in names:
        try:
            yield from iter_parquet_rows([local[name]])
        except (pa.ArrowException, OSError) as err:
            first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise DamagedStore(
                f"{repo}@{commit}: {name} is not a readable parquet file ({first_line})"
            ) from None
