"""A model given as a GGUF file, turned once into an ordinary safetensors folder.

Engines, training and the Space read model folders; a recipe (or `builder eval --model`, or
`builder space serve --model`) may name a `.gguf` file instead. transformers reads GGUF files
(`from_pretrained(folder, gguf_file=NAME)`, with the `gguf` package) for the architectures it
knows, and dequantizes them; it refuses to `save_pretrained` such a model, but its state dict
loads into a fresh model of the same config, which saves normally. That is what `materialize`
does, once per file: the folder is `<work_dir>/models/<stem>-<sha256[:12]>/`, written to a
temporary name and renamed when complete (a crash leaves no half folder that looks done), and
reused while the file's content is the same.

The folder's `gguf_source.json` records the file's name, its SHA-256 and what its metadata says
of the model it came from (a Hub id where the file has a Hub address; many have only a name):
`resolve_model` puts that, with the recipe's `model_origin` when given, into every card's
lineage.

Limits: the weights are dequantized (a Q4 file becomes bf16 safetensors, four times its size);
what the quantization lost is not recovered. An architecture transformers cannot read from GGUF
is a one-line error naming the file.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path

from builder.errors import StageError

log = logging.getLogger(__name__)

SOURCE_FILE = "gguf_source.json"
_MAGIC = b"GGUF"


def is_gguf(name: str) -> bool:
    return str(name).lower().endswith(".gguf")


def file_sha256(path: Path) -> str:
    """The file's SHA-256, remembered while its size and modification time stay the same."""
    stat = path.stat()
    return _sha256(path.resolve(), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _sha256(path: Path, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def materialize(path: str | Path, work_dir: str | Path) -> tuple[Path, dict]:
    """The safetensors folder made from GGUF file `path`, and its source record."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise StageError(f"model '{path}' not found: no such GGUF file")
    with open(path, "rb") as handle:
        if handle.read(4) != _MAGIC:
            raise StageError(f"model '{path.name}' is not a GGUF file (no GGUF magic bytes)")
    sha = file_sha256(path)
    root = Path(work_dir).expanduser() / "models"
    folder = root / f"{path.stem}-{sha[:12]}"
    source_file = folder / SOURCE_FILE
    if source_file.is_file():
        return folder, json.loads(source_file.read_text())
    root.mkdir(parents=True, exist_ok=True)
    partial = root / f".{folder.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    started = time.monotonic()
    log.info("converting %s (sha256 %s) to a safetensors folder, once", path.name, sha[:12])
    try:
        metadata = _convert(path, partial)
        source = {"file": path.name, "sha256": sha, "metadata": metadata}
        (partial / SOURCE_FILE).write_text(json.dumps(source, indent=2) + "\n")
        try:
            partial.rename(folder)
        except OSError:  # another process finished first: its folder is as good as ours
            if not source_file.is_file():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    log.info("converted %s in %.1f s: %s", path.name, time.monotonic() - started, folder.name)
    return folder, json.loads(source_file.read_text())


def _convert(path: Path, out: Path) -> dict:
    """Dequantize `path` into `out` (safetensors, its tokenizer); what its metadata says."""
    try:
        import gguf  # noqa: F401  # transformers needs it; say so in one line if missing
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as err:
        raise StageError(
            f"model '{path.name}': reading GGUF files needs torch, transformers and gguf "
            f"(pip install gguf): {err}"
        ) from None
    folder, name = str(path.parent), path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    except Exception as err:  # noqa: BLE001  # damaged or unsupported: one line naming it
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise StageError(f"model '{name}': cannot read this GGUF file: {first}") from None
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights are plain tensors once dequantized
    # bf16 where the file was quantized (no precision is lost: Q4/Q8 hold less than bf16)
    config.dtype = torch.bfloat16
    fresh = type(loaded)(config)
    missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
    if [k for k in missing if "rotary" not in k] or unexpected:
        raise StageError(
            f"model '{name}': its weights do not fit {type(loaded).__name__} "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    if getattr(config, "tie_word_embeddings", False):
        fresh.tie_weights()
    out.mkdir(parents=True)
    fresh.to(torch.bfloat16).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return _base_model(path)


def _base_model(path: Path) -> dict:
    """What the file's metadata says of the model it was made from: a Hub id where it has a
    Hub address (`general.base_model.0.repo_url`, `general.source.repo_url`), and its name and
    organization. Many files have no address: the recipe's `model_origin` then names it."""
    try:
        from gguf import GGUFReader

        reader = GGUFReader(str(path))
    except Exception:  # noqa: BLE001  # metadata is a courtesy: the conversion succeeded
        return {}
    fields = {}
    for key in (
        "general.base_model.0.repo_url",
        "general.source.repo_url",
        "general.name",
        "general.organization",
        "general.architecture",
    ):
        field = reader.fields.get(key)
        if field is not None and field.data:
            try:
                fields[key] = bytes(field.parts[field.data[0]]).decode("utf-8", "replace")
            except TypeError:  # not a string field
                continue
    found = {
        "name": fields.get("general.name"),
        "organization": fields.get("general.organization"),
        "architecture": fields.get("general.architecture"),
    }
    for key in ("general.base_model.0.repo_url", "general.source.repo_url"):
        url = fields.get(key, "")
        if "huggingface.co/" in url:
            found["hub_id"] = url.split("huggingface.co/", 1)[1].strip("/")
            break
    return {k: v for k, v in found.items() if v}
