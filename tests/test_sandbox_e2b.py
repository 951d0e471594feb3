"""The `e2b` sandbox, offline and (with E2B_API_KEY) live.

E2B cannot be reached from CI, so the offline tests drive the backend through `FakeE2B`, a
stand-in for `e2b_code_interpreter.Sandbox` with the same methods (create, files.write,
files.write_files, commands.run, set_timeout, kill). It either runs the commands for real on
this host (`execute=True`: the batch driver, unshare and setpriv included, which needs root)
or answers from a script (every program passes; faults injected on demand), to test the
pool: batching, retries, rate limits, killing, the API key. A test binds every call the
backend made to the real SDK's signatures, so the fake cannot drift from the SDK unnoticed.
The live tests run only when E2B_API_KEY is set.
"""

from __future__ import annotations

import inspect
import itertools
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import pytest

from builder.sandbox import Program, SandboxError, SandboxLimits, get_sandbox
from builder.sandbox import _e2b_batch as batches
from builder.sandbox.e2b import E2BApi, E2BSandbox, load_sdk
from tests.sandbox_battery import (  # noqa: F401 - the shared tests are collected from here
    EARLY_EXITS,
    TIGHT,
    Backend,
    correct_and_wrong,
    humaneval,
    run_one,
    test_asserts_are_on,
    test_early_exit_never_passes,
    test_forged_report_never_passes,
    test_humaneval_correct_pass_and_wrong_fail,
    test_resource_battery,
    test_run_iter_gives_each_result_as_it_comes,
    test_specific_limit_messages,
    test_verdicts_and_input_order,
)

KEY = f"e2b_test_{uuid.uuid4().hex}"
HOST_PYTHON = "/usr/bin/python3"  # what the fake runs programs with: readable by any uid


class RateLimited(Exception):
    pass


class AuthFailed(Exception):
    pass


class SandboxGone(Exception):
    pass


class CommandExit(Exception):
    def __init__(self, exit_code: int, stdout: str, stderr: str) -> None:
        super().__init__(f"Command exited with code {exit_code} and error:\n{stderr}")
        self.exit_code, self.stdout, self.stderr = exit_code, stdout, stderr


class FakeE2B:
    """A fake E2B service: `api()` gives the backend its SDK surface; calls are recorded."""

    def __init__(self, execute: bool = False) -> None:
        self.execute = execute
        self.calls: list[tuple[str, tuple, dict]] = []
        self.created: list[FakeSandbox] = []
        self.killed: list[str] = []
        self.rate_limited_creates = 0  # the next N creates answer 429
        self.die_after_results: int | None = None  # the next batch run dies after N results
        self.always_die = False  # every batch run dies before its first result
        self.template_lacks_tools = False  # the preflight check fails
        self.batch_started = threading.Event()
        self.hang_batches = False  # batch runs last until their sandbox is killed
        self.refuse_key = False
        self.error_with_key = False  # an SDK error message that (wrongly) contains the key
        self.lock = threading.Lock()

    def api(self) -> E2BApi:
        return E2BApi(
            create=self.create, default_template="code-interpreter-v1",
            rate_limited=(RateLimited,), auth_failed=(AuthFailed,), command_exit=CommandExit,
        )  # fmt: skip

    def record(self, name: str, args: tuple, kwargs: dict) -> None:
        with self.lock:
            self.calls.append((name, args, kwargs))

    def create(self, template=None, timeout=None, metadata=None, envs=None, secure=None,
               allow_internet_access=None, **opts):  # fmt: skip
        self.record("create", (), dict(template=template, timeout=timeout, metadata=metadata,
                                       envs=envs, allow_internet_access=allow_internet_access,
                                       **opts))  # fmt: skip
        if self.refuse_key:
            raise AuthFailed("Invalid API key")
        with self.lock:
            if self.rate_limited_creates:
                self.rate_limited_creates -= 1
                raise RateLimited("Rate limit exceeded, please try again later")
            sandbox = FakeSandbox(self, f"fake-{len(self.created)}")
            self.created.append(sandbox)
        return sandbox


class FakeSandbox:
    def __init__(self, service: FakeE2B, sandbox_id: str) -> None:
        self.service, self.sandbox_id = service, sandbox_id
        self.files = _Files(self)
        self.commands = _Commands(self)
        self.stored: dict[str, bytes] = {}
        self.alive = True

    def set_timeout(self, timeout):
        self.service.record("set_timeout", (timeout,), {})

    def kill(self, **opts):
        self.service.record("kill", (), opts)
        with self.service.lock:
            self.service.killed.append(self.sandbox_id)
        self.alive = False
        return True


class _Files:
    def __init__(self, sandbox: FakeSandbox) -> None:
        self.sandbox = sandbox

    def write(self, path, data, user=None, request_timeout=None):
        self.sandbox.service.record("files.write", (path, data), {"user": user})
        self._store(path, data)

    def write_files(self, files, user=None, request_timeout=None):
        self.sandbox.service.record("files.write_files", (files,), {"user": user})
        for entry in files:
            self._store(entry["path"], entry["data"])

    def _store(self, path, data):
        data = data.encode() if isinstance(data, str) else data
        self.sandbox.stored[path] = data
        if self.sandbox.service.execute:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as fh:
                fh.write(data)


class _Commands:
    def __init__(self, sandbox: FakeSandbox) -> None:
        self.sandbox = sandbox

    def run(self, cmd, background=None, envs=None, user=None, cwd=None, on_stdout=None,
            on_stderr=None, stdin=None, timeout=60, request_timeout=None):  # fmt: skip
        service = self.sandbox.service
        record = {"envs": envs, "user": user, "timeout": timeout, "on_stdout": on_stdout}
        service.record("commands.run", (cmd,), record)
        if not self.sandbox.alive:
            raise SandboxGone("The sandbox was not found")
        if "_e2b_driver.py" in cmd:
            service.batch_started.set()
            while service.hang_batches and self.sandbox.alive:
                time.sleep(0.01)
            if not self.sandbox.alive:
                raise SandboxGone("The sandbox was killed while the request was in progress")
            if service.always_die:
                service.die_after_results = 0
        if "_e2b_driver.py" not in cmd and service.template_lacks_tools:
            raise CommandExit(127, "", "bash: line 1: setpriv: command not found")
        if service.execute:
            stdout, stderr, code = self._execute(cmd, timeout)
        else:
            stdout, stderr, code = self._script(cmd), "", 0
        lines = stdout.splitlines(keepends=True)
        if "_e2b_driver.py" in cmd and service.die_after_results is not None:
            keep, service.die_after_results = service.die_after_results + 1, None  # + ready
            for line in lines[:keep]:
                on_stdout(line)
            message = "sandbox was killed"
            if service.error_with_key:
                message += f" (request with key {KEY})"
            raise SandboxGone(message)
        for line in lines:
            if on_stdout:
                on_stdout(line)
        if code != 0:
            raise CommandExit(code, stdout, stderr)
        return {"stdout": stdout, "exit_code": 0}

    def _execute(self, cmd, timeout):
        done = subprocess.run(
            ["bash", "-c", cmd], capture_output=True, text=True, timeout=timeout, check=False,
            env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
        )  # fmt: skip
        return done.stdout, done.stderr, done.returncode

    def _script(self, cmd):
        """The driver's answer, without running anything: every program passes."""
        if "_e2b_driver.py" not in cmd:
            return "3.12.0\n"  # the preflight
        batch_path = shlex.split(cmd.split(" && ", 1)[1])[-1].rsplit(" ", 1)[1].strip("'")
        codes = json.loads(self.sandbox.stored[batch_path])["codes"]
        lines = [{"ready": True, "python": "3.12.0", "uid": batches.PROGRAM_UID}]
        for index, code in enumerate(codes):
            result = {"status": "pass", "duration_s": 0.01, "stdout": code[:20], "stderr": ""}
            lines.append({"index": index, **result, "exit_code": 0, "error": ""})
        return "".join(json.dumps(line) + "\n" for line in lines)


def fake_sandbox(service: FakeE2B, limits=None, **kwargs) -> E2BSandbox:
    kwargs.setdefault("backoff_s", 0.001)
    return E2BSandbox(limits, api_key=KEY, sdk=service.api(), **kwargs)


# ----------------------------------------------------------------- setup errors, one line


def test_missing_sdk_is_one_clear_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "e2b_code_interpreter", None)  # import fails
    monkeypatch.setenv("E2B_API_KEY", KEY)
    with pytest.raises(SandboxError) as info:
        get_sandbox("e2b")
    assert "pip install e2b-code-interpreter" in str(info.value) and "\n" not in str(info.value)


def test_missing_key_is_one_clear_line(monkeypatch):
    monkeypatch.delenv("E2B_API_KEY", raising=False)
    with pytest.raises(SandboxError, match="E2B_API_KEY") as info:
        E2BSandbox(sdk=FakeE2B().api())
    assert "\n" not in str(info.value)


def test_refused_key_fails_run_with_one_line_and_no_key(caplog):
    service = FakeE2B()
    service.refuse_key = True
    with fake_sandbox(service, workers=1) as sb, pytest.raises(SandboxError) as info:
        sb.run([Program("p", "pass")])
    assert "API key" in str(info.value) and KEY not in str(info.value)
    assert KEY not in caplog.text


def test_template_without_tools_fails_run_with_one_line():
    service = FakeE2B()
    service.template_lacks_tools = True
    with fake_sandbox(service, workers=1) as sb, pytest.raises(SandboxError) as info:
        sb.run([Program("p", "pass")])
    assert "lacks unshare, setpriv or python3" in str(info.value) and "\n" not in str(info.value)
    assert service.killed == ["fake-0"]


# -------------------------------------------------------------------------- pure parts


def test_batch_payload_and_output_parsing():
    limits = SandboxLimits(timeout_s=3)
    payload = json.loads(batches.batch_payload(["a = 1", "b = 2"], limits))
    assert payload["codes"] == ["a = 1", "b = 2"]
    assert payload["config"]["timeout_s"] == 3 and payload["config"]["python_paths"] == []
    result = {"status": "pass", "duration_s": 0.1, "stdout": "x", "stderr": "", "exit_code": 0,
              "error": ""}  # fmt: skip
    text = "\n".join([
        json.dumps({"ready": True, "python": "3.12"}),
        "some noise",
        json.dumps({"index": 0, **result}),
        json.dumps({"index": 1, **result, "status": "fail", "recycle": True}),
        json.dumps({"index": 2, **result})[:30],  # the driver died while writing it
    ])  # fmt: skip
    out = batches.parse_output(text)
    assert out.ready["python"] == "3.12" and not out.fatal
    assert sorted(out.results) == [0, 1] and out.results[1]["status"] == "fail"
    assert out.recycled
    assert batches.to_result("id", out.results[0]).status == "pass"
    assert batches.parse_output(json.dumps({"fatal": "not PID 1"})).fatal == "not PID 1"


def test_driver_command_quotes_every_path():
    limits = SandboxLimits(tmpfs_bytes=1 << 20)
    cmd = batches.driver_command("/h d/b'x.json", limits, harness_dir="/h d", python="py 3")
    readable, unshare = cmd.split(" && ", 1)
    assert shlex.split(readable) == ["chmod", "-R", "a+rX", "/h d"]
    argv = shlex.split(unshare)
    assert argv[:3] == ["unshare", "--pid", "--fork"] and argv[-3:-1] == ["sh", "-c"]
    inner = argv[-1]
    assert "size=1048576" in inner
    run = shlex.split(inner.split("exec ", 1)[1])
    assert run[0] == "setpriv" and f"--reuid={batches.PROGRAM_UID}" in run
    assert run[-4:] == ["py 3", "-I", "/h d/_e2b_driver.py", "/h d/b'x.json"]


# ------------------------------------------------------------------ the pool, scripted


def test_batches_fill_few_sandboxes_and_all_are_killed():
    service = FakeE2B()
    with fake_sandbox(service, workers=2, batch_size=8) as sb:
        results = sb.run([Program(f"p{i}", f"x = {i}") for i in range(40)])
        assert [r.id for r in results] == [f"p{i}" for i in range(40)]
        assert all(r.status == "pass" and r.stdout == f"x = {i}" for i, r in enumerate(results))
    runs = [c for c in service.calls if c[0] == "commands.run" and "_e2b_driver" in c[1][0]]
    assert len(runs) >= 5  # 40 programs in batches of at most 8
    assert 1 <= len(service.created) <= 2
    assert sorted(service.killed) == sorted(s.sandbox_id for s in service.created)
    assert sb.live_sandbox_ids() == []


def test_rate_limited_creation_backs_off_and_succeeds():
    service = FakeE2B()
    service.rate_limited_creates = 3
    with fake_sandbox(service, workers=1) as sb:
        assert run_one(sb, "pass").status == "pass"
    creates = [c for c in service.calls if c[0] == "create"]
    assert len(creates) == 4 and len(service.created) == 1


def test_endless_rate_limit_ends_as_infra_error():
    service = FakeE2B()
    service.rate_limited_creates = 10**6
    with fake_sandbox(service, workers=1, rate_limit_retries=2, infra_retries=1) as sb:
        result = run_one(sb, "pass")
    assert result.status == "infra_error" and "rate limit" in result.error.lower()
    assert len([c for c in service.calls if c[0] == "create"]) == 6  # (2 + 1 waits) x 2 tries


def test_dead_sandbox_keeps_finished_results_and_reruns_the_rest(caplog):
    service = FakeE2B()
    service.die_after_results = 2
    service.error_with_key = True
    with fake_sandbox(service, workers=1, batch_size=5) as sb:
        results = sb.run([Program(f"p{i}", f"x = {i}") for i in range(5)])
    assert [r.status for r in results] == ["pass"] * 5
    assert len(service.created) == 2 and service.killed == ["fake-0", "fake-1"]
    runs = [c[1][0] for c in service.calls if c[0] == "commands.run" and "_e2b_driver" in c[1][0]]
    assert len(runs) == 2
    second = [c for c in service.calls if c[0] == "files.write"][-1][1][1]
    assert json.loads(second)["codes"] == ["x = 2", "x = 3", "x = 4"]  # p0, p1 were kept
    assert KEY not in caplog.text and "***" in caplog.text


def test_persistent_failure_is_infra_error_after_retries():
    service = FakeE2B()
    service.always_die = True
    with fake_sandbox(service, workers=1, infra_retries=2) as sb:
        result = run_one(sb, "pass")
    assert result.status == "infra_error" and "SandboxGone" in result.error
    assert len(service.created) == 3 and len(service.killed) == 3


def test_sandboxes_are_killed_when_run_is_interrupted():
    """Ctrl-C in run() reaches `with`, whose close() kills every live sandbox at once.

    The kernel may hand a process's SIGINT to any of its threads; here it goes to another
    thread than the one in run(), which must still notice it (a wait without a timeout never
    did: the run hung until every program finished). A watchdog ends a hang, and fails the test."""
    service = FakeE2B()
    service.hang_batches = True
    main = threading.get_ident()
    watchdog_fired = threading.Event()
    done = threading.Event()

    def interrupt():
        service.batch_started.wait(30)  # set by a slot: run() has queued its programs by now
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)  # to this thread, not main
        if not done.wait(60):  # a guard against a hang, not a measurement
            watchdog_fired.set()
            signal.pthread_kill(main, signal.SIGINT)

    # As in a terminal: a run started in the background of a shell ignores SIGINT from birth.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    with pytest.raises(KeyboardInterrupt), fake_sandbox(service, workers=2) as sb:
        threading.Thread(target=interrupt, daemon=True).start()
        try:
            sb.run([Program(f"p{i}", "pass") for i in range(40)])
        finally:
            done.set()
            signal.signal(signal.SIGINT, previous)
    assert not watchdog_fired.is_set(), "run() did not notice a SIGINT another thread received"
    assert service.created and sorted(service.killed) == sorted(
        s.sandbox_id for s in service.created
    )
    assert sb.live_sandbox_ids() == []
    # The hung batches ended because their sandboxes were killed, and no batch started after:
    # at most one per slot, where the 40 programs queued make 3 batches of 16.
    runs = [c for c in service.calls if c[0] == "commands.run" and "_e2b_driver" in c[1][0]]
    assert 1 <= len(runs) <= len(service.created) <= 2


def test_the_key_reaches_only_create():
    service = FakeE2B()
    with fake_sandbox(service, workers=1) as sb:
        sb.run([Program("p", "pass")])
    for name, args, kwargs in service.calls:
        if name == "create":
            assert kwargs["api_key"] == KEY and not kwargs["envs"]
            assert kwargs["allow_internet_access"] is False
        else:
            assert KEY not in repr((args, kwargs)), name
            if name == "commands.run":
                assert not kwargs["envs"] and kwargs["user"] == "root"


def test_every_call_binds_to_the_real_sdk():
    """The fake's methods are ours: check each recorded call against the SDK's signatures."""
    e2b = pytest.importorskip("e2b")
    from e2b.connection_config import ApiParams
    from e2b.sandbox_sync.commands.command import Commands
    from e2b.sandbox_sync.filesystem.filesystem import Filesystem
    from e2b_code_interpreter import Sandbox

    service = FakeE2B()
    with fake_sandbox(service, workers=1, batch_size=2, sandbox_timeout_s=1) as sb:
        sb.run([Program(f"p{i}", "pass") for i in range(3)])
    real = {
        "create": Sandbox.create,
        "files.write": Filesystem.write,
        "files.write_files": Filesystem.write_files,
        "commands.run": Commands.run,
        "set_timeout": Sandbox.set_timeout,
        "kill": Sandbox.kill,
    }
    assert {name for name, _, _ in service.calls} == set(real)
    for name, args, kwargs in service.calls:
        signature = inspect.signature(real[name])
        self_args = () if name == "create" else (object(),)
        extra = {k: kwargs.pop(k) for k in list(kwargs) if k in ApiParams.__annotations__}
        signature.bind(*self_args, *args, **kwargs)  # raises TypeError if we called it wrong
        assert set(extra) <= {"api_key"}
    assert Sandbox.default_template == service.api().default_template
    # What the backend catches, read from the real SDK (the fake gives its own look-alikes).
    sdk = load_sdk()
    assert sdk.rate_limited == (e2b.RateLimitException, e2b.ServiceBusyException)
    assert sdk.auth_failed == (e2b.AuthenticationException,)
    assert sdk.command_exit is e2b.CommandExitException
    result_fields = set().union(
        *(inspect.get_annotations(c) for c in e2b.CommandExitException.__mro__)
    )
    assert {"exit_code", "stderr"} <= result_fields  # what the backend reads off the exception


# ------------------------------------- the real driver on this host (unshare, setpriv, root)


def _can_execute() -> str | None:
    if os.geteuid() != 0:
        return "running the E2B batch driver locally needs root (unshare, mount, setpriv)"
    for tool in ("unshare", "setpriv", "bash"):
        if shutil.which(tool) is None:
            return f"{tool} is missing"
    if not os.access(HOST_PYTHON, os.X_OK):
        return f"{HOST_PYTHON} is missing"
    return None


@pytest.fixture(scope="module")
def harness_dir():
    if (reason := _can_execute()) is not None:
        pytest.skip(reason)
    path = tempfile.mkdtemp(prefix="e2b-harness-", dir="/var/tmp")  # /tmp is remounted per batch
    yield path
    shutil.rmtree(path, ignore_errors=True)


def executing(limits, harness_dir, **kwargs) -> E2BSandbox:
    kwargs.setdefault("workers", 1)
    return fake_sandbox(
        FakeE2B(execute=True), limits, python=HOST_PYTHON, harness_dir=harness_dir, **kwargs
    )


def no_program_processes_left(sb) -> None:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                assert os.stat(f"/proc/{entry}").st_uid != batches.PROGRAM_UID, entry
            except FileNotFoundError:
                pass


@pytest.fixture(scope="module")
def backend(harness_dir):
    return Backend(
        make=lambda limits: executing(limits, harness_dir),
        worker_ids=E2BSandbox.live_sandbox_ids,
        assert_only_workers=no_program_processes_left,
    )


@pytest.fixture(scope="module")
def sandbox(harness_dir):
    with executing(SandboxLimits(timeout_s=10), harness_dir, workers=2) as sb:
        yield sb


@pytest.fixture(scope="module")
def tight(harness_dir):
    with executing(TIGHT, harness_dir) as sb:
        yield sb


def test_driver_recycles_after_leftover_state(tight):
    leftover = "import ctypes\nassert ctypes.CDLL(None).shmget(0, 1 << 20, 0o1600) >= 0\n"
    probe = "import os\nassert open('/proc/sysvipc/shm').read().count('\\n') == 1\n"
    results = tight.run([Program("shm", leftover), Program("after", probe)])
    assert [r.status for r in results] == ["pass", "pass"], results


# ------------------------------------------------------------------------------- live

live = pytest.mark.skipif(not os.environ.get("E2B_API_KEY"), reason="E2B_API_KEY is not set")


@live
def test_live_verdicts_and_isolation():
    programs = [Program(name, code) for name, code in itertools.islice(EARLY_EXITS.items(), 6)]
    network = "import socket\ntry:\n    socket.create_connection(('1.1.1.1', 53), timeout=3)\n" \
              "except OSError:\n    pass\nelse:\n    raise AssertionError('network')\n"  # fmt: skip
    programs += [Program("pass", "assert 1 + 1 == 2"), Program("network", network)]
    with get_sandbox("e2b", limits=SandboxLimits(timeout_s=10), workers=1) as sb:
        results = sb.run(programs)
        ids = sb.live_sandbox_ids()
    assert [r.status for r in results] == ["fail"] * 6 + ["pass", "pass"], results
    assert ids and sb.live_sandbox_ids() == []


@live
def test_live_humaneval_correct_pass_and_wrong_fail():
    correct, wrong = correct_and_wrong(humaneval())
    with get_sandbox("e2b", limits=SandboxLimits(timeout_s=10), workers=2, batch_size=50) as sb:
        results = sb.run(correct + wrong)
    assert [r.id for r in results[:200] if r.status != "pass"] == []
    assert [r.id for r in results[200:] if r.status != "fail"] == []
