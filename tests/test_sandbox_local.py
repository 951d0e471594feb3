"""The `local` sandbox: verdicts, earned passes, limits, isolation, HumanEval+ correctness.

The backend-independent tests live in tests/sandbox_battery.py (the docker backend runs them
too); the ones here are about bubblewrap, host processes and cgroups.

Needs bubblewrap (`apt-get install -y bubblewrap`): the tests that run programs are skipped,
with that reason, where it is missing. Where bwrap is there but cannot start (no unprivileged
user namespaces) they fail, on purpose: the sandbox does not work there.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from builder.sandbox import Program, SandboxError, SandboxLimits, _cgroups, _process, get_sandbox
from builder.sandbox.base import MiB
from builder.sandbox.local import LocalSandbox
from tests.sandbox_battery import *  # noqa: F403 - the shared battery, collected here
from tests.sandbox_battery import (
    BATTERY,
    PROBE,
    TIGHT,
    correct_and_wrong,
    humaneval,
    pooled_fixtures,
    run_one,
    wait_for,
)


def local_sandbox(*args, **kwargs) -> LocalSandbox:
    if shutil.which("bwrap") is None:
        pytest.skip(_process.BWRAP_MISSING)
    return LocalSandbox(*args, **kwargs)


def descendants(root: int) -> set[int]:
    """Host pids below `root` (from /proc/*/stat), to find leftover processes."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def only_workers_left(sb: LocalSandbox) -> None:
    for pid in sb.worker_pids():  # only the worker is left in each sandbox
        assert len(descendants(pid)) == 1, descendants(pid)


def program_running(sb: LocalSandbox) -> bool:
    """A bwrap process has more below it than its worker: the worker's child, a program."""
    return any(len(descendants(pid)) > 1 for pid in sb.worker_pids())


def pids_gone(pids: list[int]) -> None:
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists(), pid


backend, sandbox, tight = pooled_fixtures(
    local_sandbox,
    worker_ids=LocalSandbox.worker_pids,
    assert_only_workers=only_workers_left,
    running=program_running,
    assert_gone=pids_gone,
)


# ------------------------------------------------------------------------------- interface


def test_unknown_backend_is_one_line_error():
    with pytest.raises(SandboxError, match="unknown sandbox backend 'nope'") as info:
        get_sandbox("nope")
    assert "\n" not in str(info.value)


def test_factory_builds_the_local_backend():
    if shutil.which("bwrap") is None:
        pytest.skip(_process.BWRAP_MISSING)
    with get_sandbox("local", limits=TIGHT, workers=1) as sb:
        assert isinstance(sb, LocalSandbox) and len(sb.worker_pids()) == 1
        assert sb.run([]) == []
        inside = (  # the limits given are the ones programs run under
            "import resource\n"
            f"assert resource.getrlimit(resource.RLIMIT_AS) == ({TIGHT.memory_bytes},) * 2\n"
            f"assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == {TIGHT.max_open_files}\n"
            f"assert resource.getrlimit(resource.RLIMIT_FSIZE)[0] == {TIGHT.max_file_size}\n"
        )
        assert sb.run([Program("limits", inside)])[0].status == "pass"


def test_missing_bwrap_is_one_clear_line(monkeypatch):
    monkeypatch.setattr(_process.shutil, "which", lambda name: None)
    with pytest.raises(SandboxError) as info:
        LocalSandbox()
    assert "bwrap" in str(info.value) and "apt-get install -y bubblewrap" in str(info.value)
    assert "\n" not in str(info.value)


def test_bwrap_failing_to_start_is_one_clear_line(monkeypatch):
    monkeypatch.setattr(_process, "_system_binds", lambda: ["--no-such-bwrap-option"])
    with pytest.raises(SandboxError, match="cannot start.*no-such-bwrap-option") as info:
        local_sandbox(workers=1)
    assert "\n" not in str(info.value)


def test_a_closed_sandbox_refuses_work_and_a_bad_python_path_is_named(tmp_path):
    sb = local_sandbox(workers=1)
    assert sb.run([Program("a", "assert 1")])[0].status == "pass"
    sb.close()
    with pytest.raises(SandboxError, match="this sandbox is closed"):
        sb.run([Program("b", "assert 1")])
    missing = tmp_path / "no-such-dir"
    with pytest.raises(SandboxError, match=f"python path {missing} is not a directory"):
        LocalSandbox(python_paths=[str(missing)])
    for covering in ("/tmp", "/dev/shm", "/"):
        with pytest.raises(SandboxError, match=f"python path {covering} would cover"):
            LocalSandbox(python_paths=[covering])


def test_fingerprint_is_stable_and_tracks_limits(sandbox):
    with local_sandbox(SandboxLimits(timeout_s=10), workers=1) as same:
        assert same.settings_fingerprint() == sandbox.settings_fingerprint()
    with local_sandbox(SandboxLimits(timeout_s=11), workers=1) as other:
        assert other.settings_fingerprint() != sandbox.settings_fingerprint()


def test_limits_must_be_positive_numbers():
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(SandboxError, match="timeout_s must be a positive number"):
            SandboxLimits(timeout_s=bad)
        with pytest.raises(SandboxError, match="timeout must be a positive number of seconds"):
            SandboxLimits.for_timeout(bad)
    assert SandboxLimits.for_timeout(2.5) == SandboxLimits(timeout_s=2.5, cpu_time_s=3)


# ----------------------------------------------------------------------------- local only


def _no_cgroups(monkeypatch):
    monkeypatch.setattr(_cgroups.SandboxCgroups, "create", classmethod(lambda cls, *args: cls({})))


def test_process_guard_alone_stops_too_many_processes(monkeypatch):
    """Without a pids cgroup and with RLIMIT_NPROC void (host root), the worker's guard acts."""
    _no_cgroups(monkeypatch)
    with local_sandbox(TIGHT, workers=1) as sb:
        names = ("fork bomb", "too many processes")
        results = sb.run([Program(name, BATTERY[name]) for name in names] + [Program("p", PROBE)])
    assert [r.status for r in results] == ["fail", "fail", "pass"], results


def test_an_environment_under_tmp_is_bound_over_the_private_tmp():
    """CI containers often keep their venv under /tmp, which the sandbox replaces with its own:
    the python path is bound on top of it, read-only, and the wipe after each program empties
    the directories that lead to it without recycling the worker."""
    top = Path(tempfile.mkdtemp(prefix="builder-venv-", dir="/tmp"))
    site = top / "lib" / "site-packages"
    site.mkdir(parents=True)
    (site / "tmp_env_probe.py").write_text("VALUE = 42\n")
    scribble = f"""
import os, tmp_env_probe
assert tmp_env_probe.VALUE == 42
try:
    open({str(site / "x.py")!r}, "w")
except OSError:
    pass
else:
    raise AssertionError("wrote into the python path")
for junk in ({str(top / "junk")!r}, {str(top / "lib" / "junk")!r}, "/tmp/junk"):
    open(junk, "w").write("left behind")
os.chmod({str(top / "lib")!r}, 0)
"""
    after = f"""
import os, tmp_env_probe
assert tmp_env_probe.VALUE == 42
assert sorted(os.listdir("/tmp")) == sorted(["work", {top.name!r}]), os.listdir("/tmp")
assert os.listdir({str(top)!r}) == ["lib"], os.listdir({str(top)!r})
assert os.listdir({str(top / "lib")!r}) == ["site-packages"]
"""
    try:
        with local_sandbox(TIGHT, workers=1, python_paths=[str(site)]) as sb:
            before = sb.worker_pids()
            results = sb.run([Program("scribble", scribble), Program("after", after)])
            assert [r.status for r in results] == ["pass", "pass"], results
            assert sb.worker_pids() == before  # wiped in place, not recycled
        assert not (top / "junk").exists()  # the host's /tmp was never written
    finally:
        shutil.rmtree(top)


# ------------------------------------------------------------- infrastructure and cleanup


def test_dead_worker_is_infra_and_retried(tmp_path, monkeypatch):
    """Killing the sandbox from outside mid-run is not the program's fault: it is re-run. The
    program's first run marks a host folder bound into the sandbox and waits, to be killed
    there (no race with its end); the rerun finds the mark and passes."""
    from builder.sandbox import local
    from tests.test_execute import with_record

    record = tmp_path / "record"
    record.mkdir()
    monkeypatch.setattr(local, "bwrap_command", with_record(local.bwrap_command, record))
    program = (
        "import os, time\nif not os.path.exists('/record/first'):\n"
        "    open('/record/first', 'w').close()\n    time.sleep(600)\n"
    )
    with local_sandbox(SandboxLimits(timeout_s=600, cpu_time_s=600), workers=1) as sb:
        [pid] = sb.worker_pids()
        outcome = {}
        thread = threading.Thread(target=lambda: outcome.update(result=run_one(sb, program)))
        thread.start()
        wait_for(lambda: (record / "first").exists(), "the program's first run")
        os.kill(pid, signal.SIGKILL)
        thread.join(120)  # only a retried run ends before the first run's 600 s
        assert outcome["result"].status == "pass", outcome
        assert sb.worker_pids() != [pid]


def test_persistent_infra_failure_is_infra_error(monkeypatch):
    calls = []

    def broken(self, code):
        calls.append(code)
        raise _process.InfraError("simulated")

    with local_sandbox(TIGHT, workers=1, infra_retries=2) as sb:
        monkeypatch.setattr(_process.WorkerProcess, "send", broken)
        result = run_one(sb, "pass\n")
    assert result.status == "infra_error" and "simulated" in result.error
    assert len(calls) == 3


def test_close_leaves_nothing_behind():
    sb = local_sandbox(TIGHT, workers=2)
    sb.run([Program("daemon", BATTERY["daemon and zombie"])])
    pids = sb.worker_pids()
    inside = set().union(*(descendants(pid) for pid in pids))
    assert len(inside) == 2  # the two workers (PID 1 of each sandbox)
    sb.close()
    for pid in [*pids, *inside]:
        assert not Path(f"/proc/{pid}").exists()
    assert not list(Path("/sys/fs/cgroup/pids").glob(f"builder-sandbox-{os.getpid()}-{id(sb)}-*"))
    with pytest.raises(SandboxError):
        sb.run([Program("late", "pass")])


# ------------------------------------------------------------ correctness on HumanEval+


def test_wrong_programs_really_fail_in_plain_python():
    """The reference: without any sandbox, every 'wrong' program exits non-zero."""
    _, wrong = correct_and_wrong(humaneval())

    def plain(program: Program) -> int:
        return subprocess.run(
            [sys.executable, "-c", program.code], check=False, capture_output=True, timeout=60
        ).returncode

    with ThreadPoolExecutor(len(os.sched_getaffinity(0))) as pool:
        codes = list(pool.map(plain, wrong))
    assert [p.id for p, code in zip(wrong, codes) if code == 0] == []


@pytest.mark.parametrize(
    "code",
    [
        "while True:\n    pass\n",  # SIGXCPU at the soft limit
        "import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True:\n    pass\n",
    ],
    ids=["busy loop", "busy loop ignoring SIGXCPU"],  # SIGKILL at the hard limit
)
def test_the_cpu_limit_stops_a_busy_loop_long_before_the_clock(code):
    """The battery's busy loops accept either limit (which fires first depends on the load);
    here the clock is 60 s away, so the CPU limit's own verdict must name it."""
    with local_sandbox(SandboxLimits(timeout_s=60, cpu_time_s=1), workers=1) as sb:
        [result] = sb.run([Program("spin", code)])
    assert result.status == "timeout", result
    assert result.error == "exceeded the CPU time limit of 1s", result


def test_a_program_runs_as_python_would_run_its_file():
    """What `python solution.py` gives a program: its source on disk (inspect, tracebacks), its
    own `__file__`, `__main__` in sys.modules (pickle, multiprocessing), no future flags of the
    harness's, and a SyntaxError's traceback on stderr."""
    programs = {
        "source": "import inspect\ndef f():\n    return 1\n"
        "assert 'return 1' in inspect.getsource(f)\n",
        "file": "assert __file__.endswith('solution.py'), __file__\n",
        "main": "import pickle\ndef f():\n    pass\nassert pickle.loads(pickle.dumps(f)) is f\n",
        "annotations": "def f(x: int):\n    pass\nassert f.__annotations__['x'] is int\n",
    }
    with local_sandbox(SandboxLimits(timeout_s=30), workers=1) as sb:
        results = sb.run([Program(k, code) for k, code in programs.items()])
        [syntax] = sb.run([Program("syntax", "def broken(:\n    pass\n")])
    assert {p: r.status for p, r in zip(programs, results)} == dict.fromkeys(programs, "pass"), [
        r.stderr for r in results
    ]
    assert syntax.status == "error" and "SyntaxError" in syntax.stderr, syntax


def test_sysv_ipc_left_behind_recycles_the_worker_before_the_next_program():
    """SysV IPC objects outlive their process, and a wipe of /tmp does not reach them: the
    worker that ran such a program is replaced, and the next program sees none."""
    leftover = "import ctypes\nassert ctypes.CDLL(None).shmget(0, 1 << 20, 0o1600) >= 0\n"
    probe = "assert open('/proc/sysvipc/shm').read().count('\\n') == 1\n"
    with local_sandbox(TIGHT, workers=1) as sb:
        before = sb.worker_pids()
        results = sb.run([Program("leftover", leftover), Program("probe", probe)])
        assert [r.status for r in results] == ["pass", "pass"], results
        assert sb.worker_pids() != before


# ------------------------------------------------------------- memory as a sum, /dev, cgroups

# Four children of 200 MiB each, touched: each under a 256 MiB address-space limit, together
# three times over it.
FORKED_MEMORY = """
import os, time
pids = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        block = bytearray(200 << 20)
        time.sleep(2)
        os._exit(0)
    pids.append(pid)
statuses = [os.waitpid(pid, 0)[1] for pid in pids]
assert statuses == [0, 0, 0, 0], str(statuses)
"""
SUM_LIMITS = SandboxLimits(timeout_s=15, memory_bytes=256 * MiB, tmpfs_bytes=16 * MiB)


def _holds_the_sum(result) -> bool:
    killed = "memory limit exceeded (more than 268435456 bytes in all its processes)"
    return result.status == "fail" and (killed in result.error or "AssertionError" in result.error)


def test_memory_is_bounded_as_a_sum_of_the_programs_processes():
    with local_sandbox(SUM_LIMITS, workers=1) as sb:
        result, probe = sb.run([Program("sum", FORKED_MEMORY), Program("probe", PROBE)])
    assert _holds_the_sum(result), result
    assert probe.status == "pass", probe


def test_memory_guard_alone_bounds_the_sum_without_a_cgroup(monkeypatch):
    _no_cgroups(monkeypatch)
    with local_sandbox(SUM_LIMITS, workers=1) as sb:
        result, fine = sb.run(
            [
                Program("sum", FORKED_MEMORY),
                # Sixteen small forked children share the worker's pages: not counted 16 times.
                Program(
                    "fine",
                    FORKED_MEMORY.replace("200 << 20", "1 << 20")
                    .replace("4)", "16)")
                    .replace("[0, 0, 0, 0]", "[0] * 16"),
                ),
            ]
        )
    assert "memory limit exceeded" in result.error and result.status == "fail", result
    assert fine.status == "pass", fine


MEMORY_GROUP = _cgroups.own_group("memory")
needs_memory_cgroup = pytest.mark.skipif(
    not _cgroups._writable(MEMORY_GROUP), reason="no writable memory cgroup (root on cgroup v1)"
)


@needs_memory_cgroup
def test_a_memory_cgroup_holds_each_sandbox_and_is_removed_with_it():
    with local_sandbox(SUM_LIMITS, workers=1) as sb:
        memory = sb._slots[0].worker.cgroup.groups["memory"]
        assert memory.parent == MEMORY_GROUP  # under our own group: its limits still apply
        limit = int((memory / "memory.limit_in_bytes").read_text())
        assert limit == 256 * MiB + 2 * 16 * MiB + 256 * MiB  # as the docker container's
        assert (memory / "cgroup.procs").read_text().split()  # the worker is in it
    assert not memory.exists()


@needs_memory_cgroup
def test_cgroups_left_by_a_killed_run_are_removed_by_the_next():
    """A run killed with -9 leaves its groups; the next sandbox removes those whose process is
    gone, and leaves a live process's and foreign ones alone."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    left = MEMORY_GROUP / f"builder-sandbox-{dead.pid}-1-0"
    live = MEMORY_GROUP / f"builder-sandbox-{os.getpid()}-99-0"
    for group in (left, live):
        group.mkdir()
    try:
        with local_sandbox(SUM_LIMITS, workers=1):
            assert not left.exists() and live.exists()
    finally:
        for group in (left, live):
            if group.exists():
                group.rmdir()
