"""`builder store log|show|export|push`: read any published revision (a dataset, a model or
evaluation results), and copy a repository's history to another store."""

from __future__ import annotations

import json
import logging

from builder.errors import BuilderError
from builder.pipeline.publish import manifest_kind, read_manifest
from builder.pipeline.shards import iter_parquet_rows, split_files
from builder.store import Store, open_store, split_ref

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
    store = _open(args)
    repo, revision = split_ref(args.ref)
    commit = store.resolve(repo, revision)
    manifest = read_manifest(store, repo, commit)
    split = _split(args.split, manifest)
    count = 0
    with open(args.output, "w") as handle:
        for row in _rows(store, repo, commit, split, manifest):
            handle.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
            count += 1
    log.info("wrote %d rows to %s", count, args.output)
    return 0


def cmd_push(args) -> int:
    from builder.store.push import push_repo

    repo_type = "model" if args.model else "dataset"
    target_repo = args.to_repo or args.repo
    source, target = open_store(args.store, repo_type), open_store(args.to, repo_type)
    count = push_repo(source, target, args.repo, target_repo, not args.public)
    log.info("%d new commits pushed to %s (%s)", count, target_repo, args.to)
    return 0


def _split(asked: str | None, manifest: dict | None) -> str:
    """The split asked for, else `train`, else (evaluation results) the first benchmark's."""
    splits = list((manifest or {}).get("splits", {})) or ["train", "rejected"]
    split = asked or ("train" if "train" in splits else splits[0])
    if manifest is not None and split not in splits:
        raise BuilderError(f"no split '{split}' in this revision (it has: {', '.join(splits)})")
    return split


def _rows(store: Store, repo: str, commit: str, split: str, manifest: dict | None):
    names = split_files(store, repo, commit, split, manifest)
    local = store.fetch(repo, commit, names) if names else {}
    return iter_parquet_rows([local[n] for n in names])
