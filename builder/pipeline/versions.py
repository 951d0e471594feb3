"""Versions of the software that made a dataset, for its card."""

from __future__ import annotations

import platform
from importlib import metadata

import builder

_PACKAGES = ("pyarrow", "datasets", "huggingface_hub", "transformers", "torch", "vllm", "trl")


def software_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "code-instruct-builder": builder.__version__}
    for package in _PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions
