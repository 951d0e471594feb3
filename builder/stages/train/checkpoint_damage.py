"""What can be wrong with a checkpoint folder that says it is complete: its marker is written
last, after the Trainer's files, but a disk that lost data, a copy cut short or a hand edit can
still leave a file damaged behind it."""

from __future__ import annotations

import json
from pathlib import Path


def checkpoint_damage(path: Path) -> str | None:
    """What is wrong with a checkpoint folder whose marker says it is complete, or None: its
    trainer state must be JSON, its safetensors files as long as their headers say, and its
    torch files (optimizer, scheduler, RNG: zip archives) readable to their central directory."""
    import zipfile

    from builder.engines.model_folder import safetensors_damage

    try:
        json.loads((path / "trainer_state.json").read_text())
    except (OSError, ValueError) as err:
        return f"trainer_state.json: {str(err).splitlines()[0]}"
    for file in sorted(path.rglob("*")):
        if file.suffix == ".safetensors":
            problem = safetensors_damage(file)
        elif file.suffix in (".pt", ".pth", ".bin"):
            try:
                with zipfile.ZipFile(file) as archive:
                    archive.infolist()
                problem = None
            except (OSError, zipfile.BadZipFile) as err:
                problem = f"not a readable torch file ({err})"
        else:
            continue
        if problem:
            return f"{file.relative_to(path)}: {problem}"
    return None
