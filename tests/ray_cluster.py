"""A Ray cluster of one or more nodes on this machine, for the tests and the benchmarks.

Each node is `ray start --block` in its own process session, with one CPU (`--num-cpus`), free
ports (two nodes on one machine cannot share the defaults), a small object store and token
authentication as Ray 2.60 has it by default: a token file that every node and driver is given
through RAY_AUTH_TOKEN_PATH (`env`). RAY_TMPDIR is a folder of the cluster's own, so that it
never finds nor disturbs another cluster of this machine, and every one of its processes names
that folder: `stop` ends them by PID (never `ray stop`, which would end every cluster here) and
`processes` finds any left.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.fake_hub import free_port

ROOT = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).with_name("ray"))


@dataclass
class Cluster:
    address: str
    env: dict[str, str]  # for drivers: the token, the cluster's temp folder, this checkout
    temp: str
    nodes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def pids(self, node: str) -> set[int]:
        """The node's processes: `ray start`, its raylet and every worker the raylet started."""
        import psutil  # a dependency of ray's: imported only where ray is

        try:
            root = psutil.Process(self.nodes[node].pid)
            return {root.pid, *(p.pid for p in root.children(recursive=True))}
        except psutil.NoSuchProcess:
            return set()

    def add_node(self, name: str, cpus: int = 1) -> None:
        args = [f"--address={self.address}", "--object-store-memory=100000000"]
        self.nodes[name] = _start_node(name, [*args, f"--num-cpus={cpus}"], self.env, self.temp)

    def kill(self, node: str) -> None:
        """`kill -9` of every process of the node, as if its machine had gone."""
        for pid in self.pids(node):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.nodes[node].wait()


@contextmanager
def ray_cluster(nodes: int = 2, cpus_per_node: int = 1):
    """A head and `nodes - 1` workers; every process stopped at the end, and checked gone."""
    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths must fit
    token = Path(temp) / "auth_token"
    token.write_text(secrets.token_hex(32))
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token),
        "RAY_TMPDIR": temp,
        "RAY_USAGE_STATS_ENABLED": "0",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("RAY_ADDRESS", None)
    port = free_port()
    cluster = Cluster(f"127.0.0.1:{port}", env, temp)
    try:
        cluster.nodes["head"] = _start_node("head", [
            "--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp}",
            f"--dashboard-port={free_port()}", f"--ray-client-server-port={free_port()}",
            "--object-store-memory=100000000", f"--num-cpus={cpus_per_node}",
        ], env, temp)  # fmt: skip
        for index in range(1, nodes):
            cluster.add_node(f"worker{index}", cpus_per_node)
        yield cluster
    finally:
        stop(cluster.nodes.values(), temp)
        leaked = processes(temp)
        shutil.rmtree(temp, ignore_errors=True)
        if leaked:
            raise RuntimeError(f"Ray processes left running: {leaked}")


def _start_node(name: str, args: list[str], env: dict, temp: str) -> subprocess.Popen:
    log = Path(temp) / f"{name}.log"
    process = subprocess.Popen(
        [RAY, "start", "--block", "--disable-usage-stats",
         f"--dashboard-agent-listen-port={free_port()}", *args],
        env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 180
    while "Ray runtime started." not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the {name} node did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    return process


def processes(temp: str) -> list[int]:
    """Every process whose command line names the folder."""
    import psutil

    found = []
    for process in psutil.process_iter(["cmdline"]):
        if temp in " ".join(process.info["cmdline"] or []):
            found.append(process.pid)
    return found


def stop(nodes, temp: str) -> None:
    """SIGTERM, then SIGKILL, to every process of the nodes and any other naming `temp`."""
    import psutil

    members = []
    for node in nodes:
        try:
            root = psutil.Process(node.pid)
            members += [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    for pid in processes(temp):
        try:
            members.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass
    for member in members:
        try:
            member.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(members, timeout=5)
    for member in alive:
        try:
            member.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=15)
