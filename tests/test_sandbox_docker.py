"""The `docker` sandbox: the shared batteries (tests/sandbox_battery.py), plus its image, its
containers' settings, crashes and cleanup.

Needs docker (`apt-get install -y docker.io`). When the daemon is not running and we are root,
the module starts `dockerd` itself (and leaves it running for later runs); the tests are
skipped, with the reason, only where docker is not installed or dockerd cannot start.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from builder.sandbox import (
    Program,
    SandboxError,
    SandboxLimits,
    _docker_container,
    _docker_image,
    get_sandbox,
)
from builder.sandbox._process import InfraError, host_interpreter
from builder.sandbox.base import GiB, MiB
from tests.sandbox_battery import *  # noqa: F403 - the shared battery, collected here
from tests.sandbox_battery import TIGHT, pooled_fixtures, run_one, wait_for

# The docker battery: the local sandbox runs the same battery, quicker.
pytestmark = pytest.mark.slow

DOCKERD_START_TIMEOUT_S = 60.0
DAEMON_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # containerd, runc
# Tried in order: the defaults, then without the bridge network and iptables (our containers
# use --network none), then with the vfs storage driver (where overlayfs is unavailable).
DOCKERD_FLAG_SETS = ([], ["--iptables=false", "--bridge=none"],
                     ["--iptables=false", "--bridge=none", "--storage-driver=vfs"])  # fmt: skip


def _daemon_answers(docker: str) -> bool:
    try:
        done = subprocess.run(
            [docker, "version", "--format", "{{.Server.Version}}"],
            capture_output=True, timeout=20, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def _start_dockerd(dockerd: str, flags: list[str]) -> tuple[bool, str]:
    """Start dockerd in its own session (it outlives the tests); (it answers?, log tail)."""
    log_path = Path(tempfile.gettempdir()) / "builder-tests-dockerd.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [dockerd, *flags], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True, cwd="/", env={"PATH": DAEMON_PATH},  # nothing of ours
        )  # fmt: skip
    deadline = time.monotonic() + DOCKERD_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if _daemon_answers("docker"):
            return True, ""
        if proc.poll() is not None:  # it gave up (or another dockerd was starting: look again)
            return _daemon_answers("docker"), log_path.read_text(errors="replace")[-300:]
        time.sleep(0.5)
    proc.kill()
    proc.wait()
    return False, log_path.read_text(errors="replace")[-300:]


def ensure_docker() -> str | None:
    """None when the docker daemon answers (started here if need be), else why it does not."""
    if shutil.which("docker") is None:
        return _docker_container.DOCKER_MISSING
    if _daemon_answers("docker"):
        return None
    dockerd = shutil.which("dockerd")
    if dockerd is None or os.geteuid() != 0:
        return "the docker daemon is not running, and dockerd cannot be started here (not root)"
    tail = ""
    for flags in DOCKERD_FLAG_SETS:
        ok, tail = _start_dockerd(dockerd, flags)
        if ok:
            return None
    return f"dockerd would not start: {' '.join(tail.split())}"


_docker_checked: list[str | None] = []  # the answer of ensure_docker(), once per session


def docker_sandbox(limits=None, **kwargs):
    """A docker sandbox; the test is skipped, with the reason, where docker cannot run."""
    if not _docker_checked:
        _docker_checked.append(ensure_docker())
    if _docker_checked[0] is not None:
        pytest.skip(_docker_checked[0])
    return get_sandbox("docker", limits=limits, **kwargs)


def processes_in(name: str) -> list[str]:
    done = subprocess.run(
        ["docker", "top", name, "-eo", "pid,args"], capture_output=True, text=True, check=True
    )
    return done.stdout.splitlines()[1:]


def only_workers_left(sb) -> None:
    for name in sb.container_names():
        assert len(processes_in(name)) == 1, processes_in(name)


def containers_of(prefix: str) -> list[str]:
    done = subprocess.run(
        ["docker", "ps", "-a", "--format", "{{.Names}}", "--filter", f"name={prefix}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.split()


def containers_gone(names: list[str]) -> None:
    for name in names:
        assert containers_of(name) == [], name


backend, sandbox, tight = pooled_fixtures(
    docker_sandbox,
    worker_ids=lambda sb: sb.container_names(),
    assert_only_workers=only_workers_left,
    running=lambda sb: any(len(processes_in(name)) > 1 for name in sb.container_names()),
    assert_gone=containers_gone,
)


# ------------------------------------------------------------------- setup errors, one line


def test_missing_docker_cli_is_one_clear_line(monkeypatch):
    from builder.sandbox import docker as docker_backend

    monkeypatch.setattr(docker_backend.shutil, "which", lambda name: None)
    with pytest.raises(SandboxError) as info:
        get_sandbox("docker")
    assert "apt-get install -y docker.io" in str(info.value) and "\n" not in str(info.value)


def test_unreachable_daemon_is_one_clear_line(monkeypatch, tmp_path):
    if shutil.which("docker") is None:
        pytest.skip(_docker_container.DOCKER_MISSING)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such.sock")
    with pytest.raises(SandboxError, match="docker daemon is not reachable") as info:
        get_sandbox("docker")
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------------- image


def test_image_has_one_layer_and_is_reused(sandbox):
    image = sandbox.image
    layers = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{len .RootFS.Layers}} {{.Id}}", image],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert layers[0] == "1"  # FROM nothing: our root filesystem is the only layer
    assert _docker_image.ensure_image(shutil.which("docker"), host_interpreter()) == image
    again = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", image],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert again == layers[1:]  # not rebuilt


def test_image_tag_follows_content(tmp_path):
    entries = _docker_image.image_entries(host_interpreter())
    [harness] = [e for e in entries if e.path.endswith("/_child.py")]
    assert any(e.path == os.path.realpath(sys.executable) or "libc.so" in e.path for e in entries)
    copy = tmp_path / "_child.py"
    shutil.copy2(harness.source, copy)  # same content, same mtime
    swapped = [e if e is not harness else replace(e, source=str(copy)) for e in entries]
    assert _docker_image.content_tag(swapped) == _docker_image.content_tag(entries)
    stat = copy.stat()
    copy.write_text(copy.read_text() + "\n# changed\n")
    os.utime(copy, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # only the content differs
    assert _docker_image.content_tag(swapped) != _docker_image.content_tag(entries)


# ----------------------------------------------------------------------- container limits


def test_container_settings(tight):
    [name] = tight.container_names()
    fmt = (
        "{{.HostConfig.NetworkMode}} {{.HostConfig.ReadonlyRootfs}} {{.HostConfig.Memory}}"
        " {{.HostConfig.PidsLimit}} {{.HostConfig.NanoCpus}} {{.HostConfig.CapDrop}}"
        " {{.HostConfig.SecurityOpt}} {{.Config.User}}"
    )
    got = subprocess.run(
        ["docker", "inspect", "--format", fmt, name], capture_output=True, text=True, check=True
    ).stdout.split()
    network, read_only, memory, pids, cpus, cap_drop, security, user = got
    assert (network, read_only, cpus) == ("none", "true", str(10**9))
    assert int(memory) == TIGHT.memory_bytes + 2 * TIGHT.tmpfs_bytes + 256 * MiB
    assert int(pids) == TIGHT.max_processes + 1
    assert "ALL" in cap_drop and "no-new-privileges" in security
    assert user.split(":")[0] != "0" and int(user.split(":")[0]) >= 1_000_000


def test_inside_no_privileges_and_seccomp(sandbox):
    code = """
import os
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
assert os.getuid() != 0 and os.getgid() != 0
assert int(status["CapEff"].strip(), 16) == 0, status["CapEff"]
assert int(status["CapBnd"].strip(), 16) == 0, status["CapBnd"]
assert status["NoNewPrivs"].strip() == "1"
assert status["Seccomp"].strip() == "2"  # docker's default filter
for path in ("/usr/x", "/etc/x", "/opt/harness/x"):
    try:
        open(path, "w")
    except OSError:
        continue
    raise AssertionError("wrote " + path)
"""
    result = run_one(sandbox, code)
    assert result.status == "pass", result


def test_memory_limit_bounds_the_sum_of_processes():
    """Each process stays under RLIMIT_AS, together they exceed the container: one is killed."""
    limits = SandboxLimits(timeout_s=10, memory_bytes=1 * GiB, tmpfs_bytes=16 * MiB)
    # Each child holds its block a while: under load, a child that exited before the next one
    # allocated would keep the sum under the limit, and the program would pass.
    code = """
import os, time
pids = []
for _ in range(3):
    pid = os.fork()
    if pid == 0:
        block = bytearray(600 << 20)  # touched: resident
        time.sleep(2)
        os._exit(0)
    pids.append(pid)
statuses = [os.waitpid(pid, 0)[1] for pid in pids]
assert statuses == [0, 0, 0], str(statuses)
"""
    with docker_sandbox(limits, workers=1, memory_bytes=1 * GiB) as sb:
        before = sb.container_names()
        result, probe = sb.run([Program("sum", code), Program("probe", "print('ok')")])
        assert result.status == "fail", result
        # Whichever acts first: the cgroup's OOM killer (a child killed by SIGKILL), or the
        # worker's guard on the processes' summed memory (the program killed).
        if "AssertionError" in result.error:
            statuses = json.loads(result.error.split(":", 1)[1])
            assert 9 in statuses, statuses
        else:
            assert "memory limit exceeded" in result.error, result
        assert probe.status == "pass"
        assert sb.container_names() == before  # the OOM killer took a program, not the worker


# ------------------------------------------------------------------ crashes and cleanup


def test_killed_container_is_replaced_and_its_batch_retried():
    with docker_sandbox(SandboxLimits(timeout_s=5), workers=1, batch_size=4) as sb:
        [name] = sb.container_names()
        programs = [Program(f"p{i}", f"import time\ntime.sleep(1)\nprint({i})") for i in range(6)]
        outcome = {}
        thread = threading.Thread(target=lambda: outcome.update(results=sb.run(programs)))
        thread.start()
        wait_for(lambda: len(processes_in(name)) > 1, "the first program runs")
        subprocess.run(["docker", "kill", name], capture_output=True, check=True)
        thread.join()
        results = outcome["results"]
        assert [r.status for r in results] == ["pass"] * 6, results
        assert [r.stdout for r in results] == [f"{i}\n" for i in range(6)]
        assert sb.container_names() != [name]
        assert name not in containers_of(name)


def test_persistent_infra_failure_is_infra_error(monkeypatch):
    sends = []

    def broken(self, code):
        sends.append(code)
        raise InfraError("simulated")

    with docker_sandbox(TIGHT, workers=1, infra_retries=2) as sb:
        monkeypatch.setattr(_docker_container.Container, "send", broken)
        result = run_one(sb, "pass\n")
    assert result.status == "infra_error" and "simulated" in result.error
    assert len(sends) == 3


def test_close_leaves_no_container_behind():
    sb = docker_sandbox(TIGHT, workers=2)
    prefix = sb.container_names()[0].rsplit("-", 2)[0]
    assert len(containers_of(prefix)) == 2
    sb.run([Program("daemon", "import os\nif os.fork() == 0:\n    os.setsid()\n")])
    sb.close()
    assert containers_of(prefix) == []
    with pytest.raises(SandboxError):
        sb.run([Program("late", "pass")])


def test_fingerprint_differs_from_local_and_tracks_resources(tight):
    with docker_sandbox(TIGHT, workers=1, cpus=2) as other:
        assert other.settings_fingerprint() != tight.settings_fingerprint()
    assert tight.settings_fingerprint().startswith("docker-")
