"""A local model folder checked before anything loads it: one line naming the folder and what
is wrong, instead of a loader's traceback (or, worse, a run that goes on: transformers builds
an empty one-token tokenizer for a folder without tokenizer files, and trains on it).

Checked: `config.json` is there and is JSON; a tokenizer is there (one of TOKENIZER_FILES);
weights are there, and each `.safetensors` file is as long as its header says (a truncated
copy is the usual damage). Not checked: that the weights fit the configuration (the loader
says so), or `.bin` weights beyond their presence.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from builder.errors import StageError

# Any one of these makes a tokenizer transformers can load (fast, sentencepiece, BPE, WordPiece).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model", "vocab.txt")
_MAX_HEADER = 100 << 20  # safetensors caps its JSON header at 100 MB


def check_model_folder(path: Path, name: str | None = None) -> None:
    """StageError (one line) unless `path` holds a loadable configuration, tokenizer and
    intact weights. `name`: how the user named it (default: the path)."""
    where = f"model folder {name or path}"
    config = path / "config.json"
    try:
        json.loads(config.read_text())
    except FileNotFoundError:
        raise StageError(f"{where} has no config.json") from None
    except (OSError, ValueError) as err:
        raise StageError(f"{where}: config.json is not JSON ({str(err).splitlines()[0]})") from None
    if not any((path / file).is_file() for file in TOKENIZER_FILES):
        raise StageError(f"{where} has no tokenizer: none of {', '.join(TOKENIZER_FILES)} is there")
    weights = sorted(path.glob("*.safetensors"))
    if not weights and not any(path.glob("pytorch_model*.bin")):
        raise StageError(f"{where} has no weights (no *.safetensors, no pytorch_model*.bin)")
    for file in weights:
        if problem := safetensors_damage(file):
            raise StageError(f"{where}: {file.name} is damaged ({problem})")


def safetensors_damage(file: Path) -> str | None:
    """What is wrong with a safetensors file (shorter or longer than its header says, a
    header that is not JSON), or None."""
    size = file.stat().st_size
    try:
        with open(file, "rb") as handle:
            head = handle.read(8)
            if len(head) < 8:
                return f"{size} bytes: no header"
            (length,) = struct.unpack("<Q", head)
            if length > min(_MAX_HEADER, size - 8):
                return f"{size} bytes, a header of {length} bytes"
            header = json.loads(handle.read(length))
    except (OSError, ValueError) as err:
        return f"header not readable: {str(err).splitlines()[0]}"
    ends = [
        entry["data_offsets"][1]
        for key, entry in header.items()
        if key != "__metadata__" and isinstance(entry, dict) and "data_offsets" in entry
    ]
    expected = 8 + length + max(ends, default=0)
    if expected != size:
        return f"{size:,} bytes where its header says {expected:,}: truncated or cut"
    return None
