"""Backend-independent sandbox tests: verdicts, earned passes, resources, isolation, HumanEval+.

A backend's test module imports the tests it runs from here and defines three fixtures:

- `sandbox`: a module-scoped sandbox with SandboxLimits(timeout_s=10);
- `tight`: a module-scoped sandbox with TIGHT limits and ONE worker, so that the program after
  a misbehaving one runs in the very same worker (the PROBE then checks it is clean again);
- `backend`: a `Backend` (how to make a fresh sandbox, how to see its workers from the host).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import CancelledError
from dataclasses import dataclass
from pathlib import Path

import pytest

from builder.data import BENCHMARKS_DIR
from builder.sandbox import Program, Sandbox, SandboxLimits
from builder.sandbox._child import REPORT_FD
from builder.sandbox.base import GiB, MiB

# The shared tests: a backend's test module collects them by `from tests.sandbox_battery import *`
__all__ = [
    "test_verdicts_and_input_order",
    "test_run_iter_gives_each_result_as_it_comes",
    "test_default_limits_inside",
    "test_multiprocessing_and_subprocess_work",
    "test_early_exit_never_passes",
    "test_forged_report_never_passes",
    "test_asserts_are_on",
    "test_resource_battery",
    "test_specific_limit_messages",
    "test_close_interrupts_running_programs",
    "test_network_is_blocked",
    "test_home_token_is_unreadable",
    "test_environment_is_invisible",
    "test_cannot_write_outside",
    "test_cannot_see_host_processes_or_kill_the_parent",
    "test_worker_cannot_be_tampered_with",
    "test_humaneval_correct_pass_and_wrong_fail",
]

DATA = BENCHMARKS_DIR / "HumanEvalPlus-v0.1.9.jsonl.gz"
PROJECT = Path(__file__).resolve().parents[1]
SECRET = f"hf_secret_{uuid.uuid4().hex}"

# Tight limits for the batteries: each misbehaving program ends in about TIMEOUT seconds.
TIMEOUT = 2.0
TIGHT = SandboxLimits(
    timeout_s=TIMEOUT, cpu_time_s=2, memory_bytes=1 * GiB, max_processes=16,
    max_file_size=128 * MiB, max_open_files=64, max_output_bytes=256 * 1024,
    keep_output_bytes=4096, tmpfs_bytes=32 * MiB,
)  # fmt: skip


@dataclass
class Backend:
    """What the shared tests need to know about a backend beyond the Sandbox interface."""

    # A fresh sandbox with one worker and these limits (None: the defaults).
    make: Callable[[SandboxLimits | None], Sandbox]
    # Host-side ids of the running workers (pids, container names): they change on a restart.
    worker_ids: Callable[[Sandbox], list]
    # Asserts from the host that nothing but the workers runs in the sandbox.
    assert_only_workers: Callable[[Sandbox], None]
    # For the pooled slots (local, docker): whether a program runs in one of the workers now,
    # and an assert that the workers of these ids are gone, both seen from the host.
    running: Callable[[Sandbox], bool] | None = None
    assert_gone: Callable[[list], None] | None = None


def pooled_fixtures(make: Callable[..., Sandbox], **backend: Callable):
    """The battery's fixtures for a backend of pooled slots, built by `make(limits, workers=)`:
    `backend` (`Backend` with these fields), `sandbox` (the default slots) and `tight` (one
    slot under TIGHT, so that the program after a misbehaving one runs in the very same one).
    A test module assigns them: `backend, sandbox, tight = pooled_fixtures(...)`."""

    @pytest.fixture(scope="module", name="backend")
    def backend_fixture():
        return Backend(make=lambda limits: make(limits, workers=1), **backend)

    @pytest.fixture(scope="module", name="sandbox")
    def sandbox_fixture():
        with make(SandboxLimits(timeout_s=10)) as sb:
            yield sb

    @pytest.fixture(scope="module", name="tight")
    def tight_fixture():
        with make(TIGHT, workers=1) as sb:
            yield sb

    return backend_fixture, sandbox_fixture, tight_fixture


# Run after a misbehaving program in the same single-worker sandbox: the state is clean again.
PROBE = """
import os, resource
assert sorted(os.listdir("/tmp")) == ["work"], os.listdir("/tmp")
assert os.listdir(".") == ["solution.py"], os.listdir(".")
assert os.listdir("/dev/shm") == []
assert not os.path.exists("/dev/big"), "a file written into /dev outlived its program"
procs = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
assert procs == [1, os.getpid()], procs
with open("/tmp/work/f", "wb") as fh:
    fh.write(b"x" * (8 << 20))
files = [open("/dev/null") for _ in range(32)]
pid = os.fork()
if pid == 0:
    os._exit(0)
assert os.waitpid(pid, 0)[1] == 0
print("probe ok")
"""


def run_one(sandbox, code: str, program_id: str = "p"):
    [result] = sandbox.run([Program(program_id, code)])
    return result


def src(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


# ------------------------------------------------------------------------------- verdicts


def test_verdicts_and_input_order(sandbox):
    programs = [
        ("pass", "print('hello')\nassert 1 + 1 == 2\n"),
        ("assert", "assert 1 + 1 == 3, 'bad math'\n"),
        ("raise", "raise ValueError('boom')\n"),
        ("syntax", "def f(:\n    pass\n"),
        ("nul", "x = 1\x00\n"),
        ("memory", "x = bytearray(8 * 1024 ** 3)\n"),
        ("main", "assert __name__ == '__main__'\nimport sys\nassert sys.argv == ['solution.py']\n"),
        # As in plain Python: an exception in a thread is printed, the exit status stays 0.
        ("thread raises", "import threading\nthreading.Thread(target=lambda: 1 / 0).start()\n"),
    ]
    results = sandbox.run([Program(pid, code) for pid, code in programs])
    assert [r.id for r in results] == [pid for pid, _ in programs]
    got = {r.id: r for r in results}
    assert (
        got["pass"].status == "pass"
        and got["pass"].stdout == "hello\n"
        and got["pass"].exit_code == 0
    )
    assert got["assert"].status == "fail" and got["assert"].error == "AssertionError: bad math"
    assert "Traceback" in got["assert"].stderr and "_child.py" not in got["assert"].stderr
    assert got["raise"].status == "fail" and "ValueError: boom" in got["raise"].error
    assert got["syntax"].status == "error" and "SyntaxError" in got["syntax"].error
    assert got["nul"].status == "error"
    assert got["memory"].status == "fail" and "MemoryError" in got["memory"].error
    assert got["main"].status == "pass", got["main"]
    assert (
        got["thread raises"].status == "pass" and "ZeroDivisionError" in got["thread raises"].stderr
    )


def test_run_iter_gives_each_result_as_it_comes(sandbox):
    programs = [Program(f"p{i}", f"assert {i} % 3\n") for i in range(7)]
    results = {r.id: r.status for r in sandbox.run_iter(programs)}  # any order
    assert results == {f"p{i}": "pass" if i % 3 else "fail" for i in range(7)}


def test_default_limits_inside(sandbox):
    code = f"""
import resource
assert resource.getrlimit(resource.RLIMIT_AS) == ({4 * GiB}, {4 * GiB})
assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == 256
assert resource.getrlimit(resource.RLIMIT_CORE) == (0, 0)
"""
    assert run_one(sandbox, code).status == "pass"


def test_multiprocessing_and_subprocess_work(sandbox):
    code = """
import multiprocessing, subprocess, sys
with multiprocessing.Pool(2) as pool:
    assert pool.map(abs, [-1, -2, 3]) == [1, 2, 3]
out = subprocess.run([sys.executable, "-c", "print(6 * 7)"], capture_output=True, text=True).stdout
assert out == "42\\n", out
"""
    result = run_one(sandbox, code)
    assert result.status == "pass", result


# ------------------------------------------------------------------ a pass must be earned


EARLY_EXITS = {
    "sys.exit()": "import sys\nassert True\nsys.exit()\nassert False\n",
    "sys.exit(0)": "import sys\nassert True\nsys.exit(0)\nassert False\n",
    "raise SystemExit": "assert True\nraise SystemExit\nassert False\n",
    "os._exit(0)": "import os\nassert True\nos._exit(0)\nassert False\n",
    "excepthook": "import os, sys\nsys.excepthook = lambda *a: os._exit(0)\nassert False\n",
    "atexit": "import atexit, os\natexit.register(lambda: os._exit(0))\nassert False\n",
    "atexit+sys.exit": "import atexit, os, sys\natexit.register(os._exit, 0)\nsys.exit(1)\n",
    "thread exits 0": src("""
        import os, threading, time
        threading.Thread(target=lambda: (time.sleep(0.2), os._exit(0))).start()
        time.sleep(1)
        assert False
    """),
    "re-exec -O": src("""
        import os, sys
        if sys.flags.optimize == 0:
            os.execv(sys.executable, [sys.executable, "-O", __file__])
        assert False
    """),
    "re-exec PYTHONOPTIMIZE": src("""
        import os, sys
        if sys.flags.optimize == 0:
            os.execve(sys.executable, [sys.executable, __file__], {"PYTHONOPTIMIZE": "2"})
        assert False
    """),
    "print PASS then exit": src("""
        import os, sys
        print("PASS")
        print("OK")
        sys.stdout.flush()
        os._exit(0)
    """),
    "fork finishes, parent fails": src("""
        import os
        pid = os.fork()
        if pid:
            os.waitpid(pid, 0)
            assert False
    """),
    "kill itself": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
    "os._exit in __str__": src("""
        import os
        class E(Exception):
            def __str__(self):
                os._exit(0)
        raise E()
    """),
}


@pytest.mark.parametrize("name", list(EARLY_EXITS))
def test_early_exit_never_passes(sandbox, name):
    result = run_one(sandbox, EARLY_EXITS[name], name)
    assert result.status == "fail", result
    assert result.error


# Where the harness reports, a well-formed "finished" report, then an exit 0 before the end: only
# the per-run nonce (which the program cannot know) tells it from the harness's own report.
FORGED_REPORT = f"""
import json, os
report = dict(outcome="finished", nonce="0" * 32, pid=os.getpid(), error="")
os.write({REPORT_FD}, json.dumps(report).encode())
os._exit(0)
"""


def test_forged_report_never_passes(sandbox):
    result = run_one(sandbox, FORGED_REPORT, "forged report")
    assert result.status == "fail", result
    # It did write its report and exit 0: what stopped it is the nonce check, not an accident.
    assert result.exit_code == 0 and "before the program finished" in result.error, result


def test_asserts_are_on(sandbox):
    code = src("""
        import sys
        assert sys.flags.optimize == 0
        try:
            assert False
        except AssertionError:
            pass
        else:
            raise RuntimeError("asserts off")
    """)
    assert run_one(sandbox, code).status == "pass"


# ------------------------------------------------------------------------ resource battery

BATTERY = {
    "fork bomb": src("""
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
    """),
    "fork bomb (raising)": "import os\nwhile True:\n    os.fork()\n",
    "too many processes": src("""
        import os, time
        for _ in range(40):
            if os.fork() == 0:
                time.sleep(30)
                os._exit(0)
    """),
    # Address space (bytes(n) is calloc: untouched pages), refused in milliseconds.
    "memory bomb": "chunks = []\nwhile True:\n    chunks.append(bytes(64 << 20))\n",
    # Resident memory: writing a GiB takes about a second, more on a loaded machine.
    "memory bomb, touched": "chunks = []\nwhile True:\n    chunks.append(b'x' * (64 << 20))\n",
    "busy loop ignoring signals": src("""
        import signal
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGXCPU, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        while True:
            pass
    """),
    "sleep past deadline": "import time\ntime.sleep(60)\n",
    "non-daemon thread never ends": src("""
        import threading, time
        threading.Thread(target=time.sleep, args=(60,)).start()
    """),
    "huge stdout": "while True:\n    print('x' * 10000)\n",
    "huge stderr": "import sys\nwhile True:\n    sys.stderr.write('y' * 10000)\n",
    "fill tmp": src("""
        with open("/tmp/big", "wb") as fh:
            while True:
                fh.write(b"z" * (1 << 20))
    """),
    "fill shm": src("""
        with open("/dev/shm/big", "wb") as fh:
            while True:
                fh.write(b"z" * (1 << 20))
    """),
    # /dev is read-only (bwrap) or not writable by the program (docker): nothing may be left there.
    "fill dev": src("""
        with open("/dev/big", "wb") as fh:
            while True:
                fh.write(b"z" * (1 << 20))
    """),
    "locked scratch directories": src("""
        import os
        for top in ("/tmp", "/dev/shm", "."):
            os.makedirs(f"{top}/a/b/c")
            open(f"{top}/a/b/c/f", "w").close()
            for path in (f"{top}/a/b/c", f"{top}/a/b", f"{top}/a"):
                os.chmod(path, 0)
        os.symlink("/usr", "/tmp/usr-link")
        raise SystemExit(1)
    """),
    "exhaust fds": "files = []\nwhile True:\n    files.append(open('/dev/null'))\n",
    "deep recursion": "def f(n):\n    return f(n + 1)\nf(0)\n",
    # Through a builtin, so that each level uses C stack (3.11 keeps Python frames on the heap).
    "deep recursion, C stack": src("""
        import sys
        sys.setrecursionlimit(10 ** 9)
        def f(n):
            return list(map(f, [n + 1]))
        f(0)
    """),
    "daemon and zombie": src("""
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(300)
                os._exit(0)
            os._exit(0)
        if os.fork() == 0:
            os._exit(0)
        time.sleep(0.2)
    """),
    "child ignoring SIGTERM": src("""
        import subprocess, sys
        code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"
        subprocess.Popen([sys.executable, "-c", code])
    """),
    "sysv shm left behind": src("""
        import ctypes
        assert ctypes.CDLL(None).shmget(0, 1 << 20, 0o1600) >= 0
    """),
}
# What each program must end with: its status, and the limit that fired or the resource that was
# refused (a pattern of its error). Nothing here depends on how loaded the machine is.
WALL_CLOCK = r"exceeded the wall-clock limit"
REFUSED_PROCESS = r"BlockingIOError|process limit exceeded"
EXPECTED = {
    "fork bomb": ({"timeout", "fail"}, f"{WALL_CLOCK}|{REFUSED_PROCESS}"),
    "fork bomb (raising)": ({"fail"}, REFUSED_PROCESS),
    "too many processes": ({"fail"}, REFUSED_PROCESS),
    "memory bomb": ({"fail"}, r"MemoryError"),
    # On a loaded machine the clock may stop it before it reaches the address-space limit.
    "memory bomb, touched": ({"fail", "timeout"}, f"MemoryError|{WALL_CLOCK}"),
    # SIGXCPU is ignored, so the CPU limit kills only at its hard limit, a second after the clock.
    "busy loop ignoring signals": ({"timeout"}, f"{WALL_CLOCK}|exceeded the CPU time limit"),
    "sleep past deadline": ({"timeout"}, WALL_CLOCK),
    "non-daemon thread never ends": ({"timeout"}, WALL_CLOCK),  # as plain Python, which waits
    "huge stdout": ({"fail"}, r"output limit exceeded"),
    "huge stderr": ({"fail"}, r"output limit exceeded"),
    "fill tmp": ({"fail"}, r"No space left on device"),
    "fill shm": ({"fail"}, r"No space left on device"),
    "fill dev": ({"fail"}, r"Read-only file system|Permission denied"),
    "locked scratch directories": ({"fail"}, r"SystemExit\(1\)"),
    "exhaust fds": ({"fail"}, r"Too many open files"),
    "deep recursion": ({"fail"}, r"RecursionError"),
    "deep recursion, C stack": ({"fail"}, r"SIGSEGV|RecursionError|MemoryError"),
    "daemon and zombie": ({"pass"}, r""),
    "child ignoring SIGTERM": ({"pass"}, r""),
    "sysv shm left behind": ({"pass"}, r""),
}
assert set(EXPECTED) == set(BATTERY)


@pytest.mark.parametrize("name", list(BATTERY))
def test_resource_battery(tight, backend, name):
    bad, probe = tight.run([Program(name, BATTERY[name]), Program("probe", PROBE)])
    statuses, why = EXPECTED[name]
    assert bad.status in statuses and re.search(why, f"{bad.error}\n{bad.stderr}"), bad
    if statuses == {"timeout"} or "output limit" in bad.error:  # it never ends: the worker kills it
        assert bad.exit_code == -signal.SIGKILL, bad
    assert len(bad.stdout.encode()) <= TIGHT.keep_output_bytes + 4  # utf-8 replacement slack
    assert len(bad.stderr.encode()) <= TIGHT.keep_output_bytes + 4
    assert probe.status == "pass", probe
    backend.assert_only_workers(tight)
    # The host can still start processes.
    assert subprocess.run(["true"], check=False).returncode == 0


def test_specific_limit_messages(tight):
    results = tight.run(
        [
            Program(name, BATTERY[name])
            for name in ("huge stdout", "too many processes", "sleep past deadline")
        ]
    )
    assert "output limit" in results[0].error
    assert "BlockingIOError" in results[1].error or "process limit" in results[1].error
    assert "wall-clock" in results[2].error


# ------------------------------------------------------------------------------ closing


def wait_for(condition: Callable[[], bool], what: str, limit_s: float = 60.0) -> None:
    """Poll for an event seen from the host; the limit only keeps a broken test from hanging."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting: {what}")
        time.sleep(0.02)


def test_close_interrupts_running_programs(backend):
    """What Ctrl-C in run() amounts to: close() from elsewhere kills the worker that runs a
    program (no verdict, no retry), cancels the programs no worker started, starts nothing."""
    sb = backend.make(SandboxLimits(timeout_s=600, cpu_time_s=600))
    outcome: dict[str, object] = {}

    def run(key: str, programs: list[Program]) -> None:
        try:
            outcome[key] = sb.run(programs)
        except BaseException as exc:  # noqa: BLE001 - the outcome is the point
            outcome[key] = exc

    sleeper = "import time\ntime.sleep(600)\n"
    running = threading.Thread(target=run, args=("running", [Program("s0", sleeper)]))
    running.start()
    wait_for(lambda: backend.running(sb), "the first program runs")
    queued = threading.Thread(target=run, args=("queued", [Program("s1", sleeper)] * 2))
    queued.start()
    wait_for(lambda: sb._jobs.qsize() == 2, "two programs wait in the queue")
    workers = backend.worker_ids(sb)
    sb.close()
    for thread in (running, queued):
        thread.join(120)  # only an interrupted run ends before its programs' 600 s
        assert not thread.is_alive()
    [result] = outcome["running"]
    assert result.status == "infra_error" and result.error == "sandbox closed", result
    assert isinstance(outcome["queued"], CancelledError)
    assert [slot.spawns for slot in sb._slots] == [1]  # no worker was started again
    assert backend.worker_ids(sb) == []
    backend.assert_gone(workers)


# ----------------------------------------------------------------------- isolation battery


def test_network_is_blocked(sandbox):
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    port = server.getsockname()[1]
    code = f"""
import socket
for host in ("127.0.0.1", "1.1.1.1", "8.8.8.8"):
    try:
        socket.create_connection((host, {port}), timeout=2).close()
    except OSError:
        continue
    raise AssertionError("connected to " + host)
try:
    socket.getaddrinfo("pypi.org", 443)
except OSError:
    pass
else:
    raise AssertionError("name resolution works")
"""
    try:
        result = run_one(sandbox, code)
        with pytest.raises(socket.timeout):
            server.accept()
    finally:
        server.close()
    assert result.status == "pass", result


def test_home_token_is_unreadable(sandbox):
    token = Path.home() / f".sandbox-test-token-{uuid.uuid4().hex}"
    token.write_text(SECRET)
    try:
        code = f"""
import os
try:
    print(open({str(token)!r}).read())
except OSError:
    pass
else:
    raise AssertionError("read the token")
for root in ({str(Path.home())!r}, {str(PROJECT)!r}, "/etc", "/work", "/home", "/var"):
    if os.path.isdir(root):
        print(root, sorted(os.listdir(root))[:20])
"""
        result = run_one(sandbox, code)
    finally:
        token.unlink()
    assert result.status == "pass", result
    assert SECRET not in result.stdout and token.name not in result.stdout


def test_environment_is_invisible(backend, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    code = """
import glob, os
assert "HF_TOKEN" not in os.environ
print(dict(os.environ))
for path in glob.glob("/proc/*/environ") + glob.glob("/proc/*/cmdline"):
    try:
        print(path, open(path, "rb").read())
    except OSError as exc:
        print(path, exc)
"""
    with backend.make(None) as sb:
        result = run_one(sb, code)
    assert result.status == "pass", result
    assert "/proc/1/environ" in result.stdout and SECRET not in result.stdout


def test_cannot_write_outside(sandbox, tmp_path):
    targets = [tmp_path / "escaped.txt", PROJECT / f"escaped-{uuid.uuid4().hex}.txt"]
    code = f"""
import os
for path in {[str(t) for t in targets]!r}:
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "w").write("escaped")
    except OSError:
        pass
read_only = ["/usr/escaped", "/escaped", {sys.base_prefix + "/escaped"!r}, "/opt/harness/_child.py"]
for path in read_only + ["/proc/sys/vm/swappiness", "/proc/sys/kernel/core_pattern"]:
    try:
        open(path, "w").write("1")
    except OSError:
        continue
    raise AssertionError("wrote " + path)
"""
    result = run_one(sandbox, code)
    assert result.status == "pass", result
    for target in targets:
        assert not target.exists()


def test_cannot_see_host_processes_or_kill_the_parent(tight, backend):
    runner = os.getpid()
    before = backend.worker_ids(tight)
    code = f"""
import os, signal
procs = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
assert procs == [1, os.getpid()], procs
for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGKILL):
    for pid in (os.getppid(), 1, {runner}, -1):
        try:
            os.kill(pid, sig)
        except OSError:
            pass
try:
    os.killpg(1, signal.SIGKILL)
except OSError:
    pass
print("still here")
"""
    result, probe = tight.run([Program("killer", code), Program("probe", PROBE)])
    assert result.status == "pass" and result.stdout == "still here\n", result
    assert probe.status == "pass", probe
    assert backend.worker_ids(tight) == before  # the worker was not even restarted


def test_worker_cannot_be_tampered_with(sandbox):
    """The worker (PID 1) holds the protocol pipes: its fds, memory and environ are closed."""
    code = src("""
        import ctypes, os
        try:
            fds = os.listdir("/proc/1/fd")
        except PermissionError:  # docker: not even listed
            fds = []
        for fd in fds:
            for attempt in (os.readlink, lambda p: os.open(p, os.O_WRONLY)):
                try:
                    attempt(f"/proc/1/fd/{fd}")
                except PermissionError:
                    continue
                raise AssertionError("reached the worker's fd " + fd)
        for name in ("mem", "environ", "maps", "root"):
            try:
                open(f"/proc/1/{name}", "rb").read(1)
            except PermissionError:
                continue
            raise AssertionError("read /proc/1/" + name)
        PTRACE_ATTACH = 16
        assert ctypes.CDLL(None).ptrace(PTRACE_ATTACH, 1, 0, 0) == -1
    """)
    result = run_one(sandbox, code)
    assert result.status == "pass", result


# ------------------------------------------------------------ correctness on HumanEval+


def humaneval() -> list[dict]:
    if not DATA.exists():
        pytest.skip(f"HumanEval+ data not found at {DATA}")
    with gzip.open(DATA, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def _program(task: dict, body: str, main_guard: bool = False) -> str:
    call = f"check({task['entry_point']})"
    if main_guard:
        call = f"if __name__ == '__main__':\n    {call}"
    return f"{task['prompt']}{body}\n\n{task['test']}\n\n{call}\n"


def correct_and_wrong(tasks: list[dict]) -> tuple[list[Program], list[Program]]:
    """200 each: all 164 tasks, plus a second variant of the first 36."""
    extra = tasks[: 200 - len(tasks)]
    correct = [Program(t["task_id"], _program(t, t["canonical_solution"])) for t in tasks]
    correct += [
        Program(t["task_id"] + "/main", _program(t, t["canonical_solution"], True)) for t in extra
    ]
    wrong = [Program(t["task_id"] + "/none", _program(t, "    return None\n")) for t in tasks]
    wrong += [
        Program(t["task_id"] + "/other", _program(t, tasks[i + 1]["canonical_solution"]))
        for i, t in enumerate(extra)
    ]
    return correct, wrong


def test_humaneval_correct_pass_and_wrong_fail(sandbox):
    correct, wrong = correct_and_wrong(humaneval())
    assert len(correct) == len(wrong) == 200
    results = sandbox.run(correct + wrong)
    bad_pass = [(r.id, r.status, r.error) for r in results[:200] if r.status != "pass"]
    bad_fail = [(r.id, r.status) for r in results[200:] if r.status != "fail"]
    assert not bad_pass
    assert not bad_fail
