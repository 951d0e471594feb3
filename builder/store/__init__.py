"""Open a store from its URI: `local:DIR` or `hf`."""

from __future__ import annotations

from builder.errors import StoreError
from builder.store.base import CommitInfo, DamagedStore, DiskError, RepoRefs, Store, split_ref

__all__ = [
    "CommitInfo",
    "DamagedStore",
    "DiskError",
    "RepoRefs",
    "Store",
    "open_store",
    "split_ref",
]


def open_store(uri: str, repo_type: str = "dataset") -> Store:
    if repo_type not in ("dataset", "model"):
        raise StoreError(f"unknown repository type '{repo_type}': expected dataset or model")
    if uri == "hf":
        from builder.store.hub import HubStore  # huggingface_hub is only imported when used

        return HubStore(repo_type)
    if uri.startswith("local:") and len(uri) > len("local:"):
        from builder.store.local import LocalStore

        return LocalStore(uri[len("local:") :], repo_type)
    raise StoreError(f"unknown store '{uri}': expected 'hf' or 'local:DIR'")
