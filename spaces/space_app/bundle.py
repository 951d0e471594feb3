"""The files of a Space repository, as `builder space deploy` publishes them.

The Space is self-contained: `app.py` and `space_app/` from this folder, a copy of the `builder`
package (the store readers the app imports; its shipped benchmark files left out), `space.json`
(the recipe's repositories, resolved), the pinned `requirements.txt`, and a README whose
front matter is what the Hub reads (sdk, sdk_version, app_file, models, datasets,
suggested_hardware, ...) above this folder's README text.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import yaml

from space_app.config import CONFIG_FILE, SpaceConfig

SPACE_DIR = Path(__file__).resolve().parents[1]  # spaces/
CODE_SUFFIXES = (".py", ".yaml", ".jinja", ".json", ".md")
LEFT_OUT = ("__pycache__", "data/benchmarks")  # benchmark files: only the eval step reads them
# Parameters (billions) a GPU holds in bf16 with room for the KV cache -> Hub hardware flavor.
HARDWARE = ((1.5, "cpu-upgrade"), (10, "a10g-small"), (20, "l40sx1"), (35, "a100-large"))


def suggest_hardware(parameters: int | None) -> str:
    """The smallest Hub hardware that holds a model of `parameters` in bf16 (CPU if unknown:
    the data tabs and an endpoint need no GPU)."""
    if parameters is None:
        return "cpu-upgrade"
    for billions, flavor in HARDWARE:
        if parameters <= billions * 1e9:
            return flavor
    return "a100x4"


def front_matter(
    config: SpaceConfig, models: list[str], datasets: list[str], hardware: str, gradio: str
) -> dict:
    matter = {
        "title": f"{config.recipe} instruct"[:30],
        "emoji": "🧱",
        "colorFrom": "indigo",
        "colorTo": "green",
        "sdk": "gradio",
        "sdk_version": gradio,
        "python_version": f"{sys.version_info.major}.{sys.version_info.minor}",
        "app_file": "app.py",
        "pinned": False,
        "license": "apache-2.0",
        "short_description": "Chat, scores, and every stage's data with provenance"[:60],
        "suggested_hardware": hardware,
        "models": models,
        "datasets": datasets,
    }
    if models and not hardware.startswith("cpu"):
        matter["preload_from_hub"] = models[:1]  # the weights download at build, not at start
    return matter


def readme(matter: dict) -> str:
    body = (SPACE_DIR / "README.md").read_text()
    if body.startswith("---\n"):  # this folder's own front matter is replaced
        body = body[body.find("\n---", 4) + 4 :].lstrip()
    return "---\n" + yaml.safe_dump(matter, sort_keys=False, allow_unicode=True) + "---\n\n" + body


def write_space(folder: Path, config: SpaceConfig, matter: dict, package: Path) -> list[Path]:
    """Write the Space repository's files into `folder` (emptied first); returns them."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    shutil.copy2(SPACE_DIR / "app.py", folder / "app.py")
    shutil.copy2(SPACE_DIR / "requirements.txt", folder / "requirements.txt")
    _copy_code(SPACE_DIR / "space_app", folder / "space_app")
    _copy_code(package, folder / "builder")
    (folder / CONFIG_FILE).write_text(config.to_json())
    (folder / "README.md").write_text(readme(matter))
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _copy_code(source: Path, target: Path) -> None:
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source).as_posix()
        if not path.is_file() or path.suffix not in CODE_SUFFIXES:
            continue
        if any(part in relative for part in LEFT_OUT):
            continue
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target / relative)
