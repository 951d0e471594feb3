"""Data files the package ships and uses at run time (see `benchmarks/README.md`)."""

from pathlib import Path

BENCHMARKS_DIR = Path(__file__).resolve().parent / "benchmarks"
PUBLISHED_RULES = Path(__file__).resolve().parent / "published_rules.json"
