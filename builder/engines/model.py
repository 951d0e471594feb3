"""Which model a generation stage uses, pinned: its name and a revision.

The revision goes into the stages' fingerprints and into every cache key, so that new weights
never reuse old completions. It is `engine.revision` when the recipe sets one; for a local
folder, a digest of its files (`local-<hex>`); for a Hub model, the commit of the requested
revision (`main` by default), asked of the Hub, or read from the local Hugging Face cache when
the Hub cannot be reached. A model that is none of these is a one-line error naming it.

Limits: a local file over 256 MiB is hashed by its size and a sample of its bytes (first and
last 4 MiB, and 16 blocks between), not in full, so that pinning a 30 GB folder takes a second.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from builder.engines.gguf import is_gguf, materialize
from builder.errors import StageError

DEFAULT_WORK_DIR = ".builder/work"  # where a GGUF file's folder goes when no recipe says

log = logging.getLogger(__name__)

_FULL_HASH_LIMIT = 256 << 20
_EDGE = 4 << 20
_BLOCK = 64 << 10


@dataclass(frozen=True)
class ModelRef:
    name: str  # as the recipe gives it: a Hub id or a folder (a GGUF file: the folder made of it)
    revision: str
    # A model given as a GGUF file: the file's name, SHA-256, metadata and the model it came
    # from (`engines.gguf`); None otherwise. Cards and manifests carry it as lineage.
    source: dict | None = None


def public_name(name: str) -> str:
    """How cards and manifests name a model: a Hub id as it is, a local folder by its own name
    only (its revision, a digest of its files, identifies it; the user's paths stay private)."""
    if is_gguf(name):
        return Path(name).name
    if name.startswith(("/", ".", "~")) or Path(name).expanduser().is_dir():
        return Path(name).expanduser().resolve().name
    return name


def resolve_model(
    name: str,
    revision: str | None = None,
    work_dir: str | Path | None = None,
    origin: str | None = None,
) -> ModelRef:
    """`name` pinned. A `.gguf` file becomes a safetensors folder under `work_dir` once
    (`engines.gguf`), pinned as `gguf-<sha256[:16]>` of the file; `origin` (the recipe's
    `model_origin`) names the model it was made from when its metadata does not."""
    if not name:
        raise StageError("the recipe names no model (set `model:` to a Hub id or a folder)")
    if is_gguf(name):
        folder, source = materialize(name, work_dir or DEFAULT_WORK_DIR)
        base = origin or source.get("metadata", {}).get("hub_id")
        source = {**source, "base_model": base}
        return ModelRef(str(folder), revision or f"gguf-{source['sha256'][:16]}", source)
    path = Path(name).expanduser()
    if path.exists() or name.startswith(("/", ".", "~")):
        if not (path / "config.json").is_file():
            raise StageError(
                f"model '{name}' not found: no folder with a config.json there "
                "(`builder tiny-model DIR` writes a small random one for dry runs)"
            )
        return ModelRef(name, revision or f"local-{_folder_digest(path.resolve())}")
    return ModelRef(name, _hub_revision(name, revision))


@functools.lru_cache(maxsize=32)
def _hub_revision(name: str, revision: str | None) -> str:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import (
        GatedRepoError,
        HFValidationError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return HfApi().model_info(name, revision=revision).sha
    except RevisionNotFoundError:
        raise StageError(f"model '{name}' has no revision '{revision}' on the Hub") from None
    except GatedRepoError:
        raise StageError(
            f"model '{name}' is gated: accept its terms on the Hub and set HF_TOKEN"
        ) from None
    except (RepositoryNotFoundError, HFValidationError):
        raise StageError(
            f"model '{name}' not found: not a local folder, and not on the Hub"
        ) from None
    except Exception as err:  # noqa: BLE001  # offline, or the Hub is down: the cache may know it
        cached = _cached_revision(name, revision)
        if cached:
            log.warning(
                "Hub unreachable (%s); using cached revision %s of %s",
                type(err).__name__,
                cached,
                name,
            )
            return cached
        if revision:  # a pinned revision is its own proof
            return revision
        raise StageError(
            f"model '{name}': cannot pin its revision (the Hub is unreachable: "
            f"{type(err).__name__}) and it is not in the local cache"
        ) from None


def chat_tokenizer(model: str, revision: str | None):
    """The model's tokenizer, for its chat template (`prompting: chat`); a StageError in one
    line when it has none."""
    from transformers import AutoTokenizer

    local = Path(model).expanduser().exists()
    hub_revision = None if local or (revision or "").startswith(("local-", "gguf-")) else revision
    tokenizer = AutoTokenizer.from_pretrained(model, revision=hub_revision)
    if not getattr(tokenizer, "chat_template", None):
        raise StageError(
            f"prompting: chat, but the tokenizer of '{public_name(model)}' has no chat template "
            "(a base model: use prompting: completion)"
        )
    return tokenizer


def _cached_revision(name: str, revision: str | None) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    path = try_to_load_from_cache(name, "config.json", revision=revision)
    if isinstance(path, str):
        return Path(path).parent.name  # .../snapshots/<commit>/config.json
    return None


def _folder_digest(folder: Path) -> str:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    listing = tuple(
        (str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in files
    )
    return _listing_digest(folder, listing)


@functools.lru_cache(maxsize=32)
def _listing_digest(folder: Path, listing: tuple) -> str:
    """Content digest, remembered while names, sizes and times stay the same."""
    digest = hashlib.sha256()
    for relative, size, _ in listing:
        digest.update(f"{relative}\0{size}\0".encode())
        digest.update(_file_digest(folder / relative))
    return digest.hexdigest()[:16]


def _file_digest(path: Path) -> bytes:
    size = path.stat().st_size
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        if size <= _FULL_HASH_LIMIT:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        else:
            offsets = [0, size - _EDGE] + [size * k // 17 for k in range(1, 17)]
            for offset in offsets:
                handle.seek(offset)
                digest.update(handle.read(_EDGE if offset in (0, size - _EDGE) else _BLOCK))
    return digest.digest()
