"""`builder space serve|deploy`: the Gradio Space (chat, evaluations, every stage's data and the
provenance of any row) on a recipe's store, locally or as a Hub Space.

The Space's code is `spaces/` of the source checkout (`spaces/app.py`, `spaces/space_app/`);
these commands need that checkout (an editable install), which is where they find it.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path

import builder
from builder.cli.run import add_set
from builder.errors import BuilderError, StoreError

log = logging.getLogger("builder")
PACKAGE = Path(builder.__file__).resolve().parent
SPACE_DIR = PACKAGE.parent / "spaces"


def register(commands) -> None:
    space = commands.add_parser("space", help="the Gradio Space: chat, evaluations, data")
    sub = space.add_subparsers(dest="space_command", required=True)
    serve = sub.add_parser("serve", help="run the Space locally on a recipe's store")
    serve.add_argument("recipe")
    serve.add_argument("--port", type=int, default=7860)
    serve.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to serve other machines")
    serve.set_defaults(handler=cmd_serve)
    deploy = sub.add_parser("deploy", help="publish the Space as a Hub Space repository")
    deploy.add_argument("recipe")
    deploy.add_argument("--to", required=True, metavar="NAMESPACE/NAME", help="the Space's id")
    deploy.add_argument("--hardware", help="suggested_hardware (default: from the model's size)")
    deploy.add_argument("--public", action="store_true", help="create it public (default private)")
    deploy.add_argument("--out", metavar="DIR", help="only write the Space's files into DIR")
    deploy.set_defaults(handler=cmd_deploy)
    for parser in (serve, deploy):
        parser.add_argument(
            "--eval-repo",
            action="append",
            default=[],
            metavar="REPO",
            help="another evaluation results repository to show (repeatable)",
        )
        parser.add_argument(
            "--model",
            action="append",
            default=[],
            metavar="ID_OR_DIR",
            help="another model to offer in the chat (repeatable)",
        )
        parser.add_argument(
            "--endpoint",
            action="append",
            default=[],
            metavar="URL",
            help="an OpenAI-compatible endpoint of yours: the only URLs the Space sends its "
            "ENDPOINT_API_KEY (else HF_TOKEN) to (repeatable)",
        )
        add_set(parser)


def _space_code() -> None:
    if not (SPACE_DIR / "space_app").is_dir():
        raise BuilderError(
            f"the Space's code is not at {SPACE_DIR}: `builder space` runs from a source "
            "checkout (pip install -e .)"
        )
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise BuilderError(
            "builder space needs gradio: pip install 'code-instruct-builder[space]'"
        ) from None
    if str(SPACE_DIR) not in sys.path:
        sys.path.insert(0, str(SPACE_DIR))


def cmd_serve(args) -> int:
    from builder.pipeline.recipe import load_recipe

    _space_code()
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from space_app.config import config_from_recipe
    from space_app.ui import build_app

    check_address(args.host, args.port)
    config = config_from_recipe(
        load_recipe(args.recipe, args.overrides), args.eval_repo, args.model, None, args.endpoint
    )
    demo = build_app(config)
    log.info(
        "serving recipe %s from %s on http://%s:%d",
        config.recipe,
        config.store,
        args.host,
        args.port,
    )
    demo.launch(server_name=args.host, server_port=args.port, quiet=True)
    return 0


def check_address(host: str, port: int) -> None:
    """One line, before anything loads, for a port out of range, an address this machine does
    not have, or a port another program holds."""
    import errno
    import socket

    if not 1 <= port <= 65535:
        raise BuilderError(f"--port {port}: a port is a number from 1 to 65535")
    try:
        family, kind, proto, _, where = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as err:
        raise BuilderError(f"--host {host}: not an address this machine can resolve ({err})")
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
        try:
            probe.bind(where)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise BuilderError(f"port {port} on {host} is taken by another program") from None
            if err.errno == errno.EADDRNOTAVAIL:
                raise BuilderError(f"--host {host}: not an address of this machine") from None
            raise BuilderError(f"cannot serve on {host}:{port}: {err.strerror}") from None


def cmd_deploy(args) -> int:
    import gradio

    from builder.pipeline.recipe import load_recipe

    _space_code()
    from space_app.bundle import front_matter, suggest_hardware, write_space
    from space_app.config import config_from_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    source = recipe.hub.store
    if source != "hf":
        log.warning(
            "the recipe publishes to %s; the Space reads the Hub: push its repositories "
            "there first (`builder store push`)",
            source,
        )
    config = config_from_recipe(recipe, args.eval_repo, args.model, "hf", args.endpoint)
    try:
        models, datasets = _published(config, "hf")
    except StoreError as err:
        if not args.out:
            raise
        log.warning("cannot ask the Hub (%s); listing the repositories in %s", err, source)
        models, datasets = _published(config, source)
    hardware = args.hardware or suggest_hardware(_parameters(models[0]) if models else None)
    matter = front_matter(config, models, datasets, hardware, gradio.__version__)
    if args.out:
        files = write_space(Path(args.out), config, matter, PACKAGE)
        log.info("wrote the Space's %d files to %s (nothing uploaded)", len(files), args.out)
        return 0
    from builder.store.hub import HubStore

    space = HubStore("space")  # the recipe's stores hold datasets and models; a Space is Hub-only
    with tempfile.TemporaryDirectory(prefix="builder-space-") as tmp:
        folder = Path(tmp) / "space"
        files = write_space(folder, config, matter, PACKAGE)
        space.create_repo(args.to, private=not args.public)
        head = space.resolve(args.to)
        upload = {str(p.relative_to(folder)): p for p in files}
        commit = space.commit(args.to, upload, f"space: {config.recipe}", parent=head)
    log.info(
        "deployed %s@%s: %d models, %d datasets, hardware %s",
        args.to,
        commit[:12],
        len(models),
        len(datasets),
        hardware,
    )
    if recipe.hub.private:
        log.info(
            "the recipe's repositories are private: give the Space an HF_TOKEN secret "
            "that can read them (Settings > Variables and secrets)"
        )
    return 0


def _published(config, uri: str) -> tuple[list[str], list[str]]:
    """The recipe's model and dataset repositories that exist in store `uri`, for the README's
    `models` and `datasets`."""
    from builder.store import open_store

    stores = {kind: open_store(uri, kind) for kind in ("dataset", "model")}
    models = [r for r in config.model_repos if stores["model"].repo_exists(r)]
    datasets = [s.repo for s in config.stages if s.kind != "model"] + config.eval_repos
    return models, [r for r in dict.fromkeys(datasets) if stores["dataset"].repo_exists(r)]


def _parameters(repo: str) -> int | None:
    """The model's parameter count as the Hub reports it for safetensors weights, if it does."""
    from huggingface_hub import HfApi

    try:
        info = HfApi().model_info(repo, files_metadata=False)
    except Exception as err:  # noqa: BLE001 - a guess for the README, never a failure
        log.debug("no parameter count for %s: %s", repo, err)
        return None
    return getattr(getattr(info, "safetensors", None), "total", None)
