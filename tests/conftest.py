"""Shared pytest setup.

huggingface_hub and datasets read HF_ENDPOINT, HF_HOME, HF_HUB_DISABLE_XET, ... once, when
they are first imported. pytest imports this conftest before any test module, so the
environment pointing them at the fake Hub is set here, at import time, before anything
can import them. The server itself starts lazily, with the `fake_hub` fixture.
"""

import atexit
import os
import shutil
import tempfile

import pytest

try:  # tests/ as a package (tests/__init__.py) or as a plain rootdir-relative folder
    from tests.fake_hub import FakeHub, free_port, hub_env
except ImportError:
    from fake_hub import FakeHub, free_port, hub_env

# Port chosen now, since the URL must be in the environment before the server starts.
FAKE_HUB_PORT = free_port()

# Private HF_HOME / caches for the whole session, so nothing touches the user's cache.
_HF_HOME = tempfile.mkdtemp(prefix="fake-hf-home-")
atexit.register(shutil.rmtree, _HF_HOME, ignore_errors=True)

os.environ.update(hub_env(f"http://127.0.0.1:{FAKE_HUB_PORT}", _HF_HOME))


@pytest.fixture(scope="session")
def fake_hub():
    """The fake Hub at $HF_ENDPOINT, shared by the session: use unique repo names per test."""
    hub = FakeHub(port=FAKE_HUB_PORT).start()
    yield hub
    hub.stop()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A tiny causal LM with random weights and a locally trained tokenizer (no downloads)."""
    from builder.engines.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(params=["local", "hf"])
def store_uri(request, tmp_path, monkeypatch):
    """Each test that takes it runs twice: on a local store, and on the fake Hub (`hf`)."""
    if request.param == "local":
        return f"local:{tmp_path / 'store'}"
    monkeypatch.setenv("HF_TOKEN", request.getfixturevalue("fake_hub").token)
    return "hf"
