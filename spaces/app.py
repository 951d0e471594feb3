"""The Space's entry point: the Hub runs `python app.py` in the Space repository, where
`builder space deploy` put `space.json` (which repositories to read), this folder's `space_app`
and a copy of the `builder` package. In a source checkout, the package one folder up is used."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
if not (HERE / "builder").is_dir():
    sys.path.insert(1, str(HERE.parent))

from space_app.config import load_config
from space_app.ui import build_app

demo = build_app(load_config(HERE))

if __name__ == "__main__":
    demo.launch()
