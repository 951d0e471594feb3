"""`builder space deploy` on the fake Hub: the Space repository has the metadata the Hub reads and
pinned requirements, and the deployed files, run on their own, serve the recipe's Hub data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import yaml

from tests.fake_hub import free_port
from tests.helpers import TINY, export_rows, run_cli, write_corpus

pytest.importorskip("gradio")


def test_deploy_publishes_a_space_that_reads_the_recipes_hub_repositories(
    fake_hub, monkeypatch, tmp_path
):
    import gradio
    from huggingface_hub import HfApi, snapshot_download

    monkeypatch.setenv("HF_TOKEN", fake_hub.token)
    corpus = write_corpus(tmp_path / "corpus")
    sets = [
        "hub.store=hf",
        "hub.namespace=tester",
        "name=deployed",
        f"work_dir={tmp_path / 'work'}",
        f"stages.extract.source={corpus}",
        "stages.extract.num_proc=1",
    ]
    args = [a for s in sets for a in ("--set", s)]
    assert run_cli("run", TINY, "--only", "extract", *args) == 0
    assert run_cli("space", "deploy", TINY, "--to", "tester/deployed-space", *args) == 0

    files = HfApi().list_repo_files("tester/deployed-space", repo_type="space")
    assert {
        "app.py",
        "requirements.txt",
        "README.md",
        "space.json",
        "space_app/ui.py",
        "builder/store/hub.py",
        "builder/pipeline/publish.py",
    } <= set(files)
    assert not [f for f in files if f.startswith("builder/data/benchmarks/")]
    folder = snapshot_download(
        "tester/deployed-space", repo_type="space", local_dir=tmp_path / "space"
    )
    readme = (tmp_path / "space/README.md").read_text()
    matter = yaml.safe_load(readme.split("---\n")[1])
    assert matter["sdk"] == "gradio" and matter["sdk_version"] == gradio.__version__
    assert matter["app_file"] == "app.py" and matter["suggested_hardware"] == "cpu-upgrade"
    assert matter["datasets"] == ["tester/deployed-extract"] and matter["models"] == []
    pins = [
        line
        for line in (tmp_path / "space/requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert pins and all("==" in line for line in pins)
    config = json.loads((tmp_path / "space/space.json").read_text())
    assert config["store"] == "hf"
    assert {"name": "extract", "kind": "dataset", "repo": "tester/deployed-extract"} in config[
        "stages"
    ]

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the Space's own copy
    env.update(
        GRADIO_SERVER_PORT=str(port),
        GRADIO_SERVER_NAME="127.0.0.1",
        GRADIO_ANALYTICS_ENABLED="False",
        HF_TOKEN=fake_hub.token,
    )
    app = subprocess.Popen(
        [sys.executable, "app.py"],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        client = _connect(f"http://127.0.0.1:{port}/", app)
        view = client.predict("extract", api_name="/stage")
        exported = export_rows("hf", "tester/deployed-extract", tmp_path / "export")
        names = [r[view[6]["headers"].index("name")] for r in view[6]["data"]]
        assert names == [r["name"] for r in exported] and view[-1] == ""
        hub = f"{os.environ['HF_ENDPOINT']}/datasets/tester/deployed-extract"
        assert f'src="{hub}/embed/viewer/default/train"' in view[4]  # the Hub's own viewer
        assert f'href="{hub}/tree/{view[0]["value"]}"' in view[4]
    finally:
        app.terminate()
        app.wait(timeout=30)


def _connect(url: str, app: subprocess.Popen, timeout_s: float = 120.0):
    """A client once the Space answers (it starts in a second or two; the limit is for a busy
    machine); the Space's output if it exits first."""
    from gradio_client import Client

    deadline = time.monotonic() + timeout_s
    while True:
        if app.poll() is not None:
            pytest.fail(f"the Space exited: {app.stdout.read()[-3000:]}")
        try:
            return Client(url, verbose=False)
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
