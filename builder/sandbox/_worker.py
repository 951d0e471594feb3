"""The sandbox worker: runs INSIDE bubblewrap as PID 1 of a fresh PID namespace; stdlib only.

The host (builder.sandbox.local) starts it as `python -I /opt/harness/_worker.py <config>` and
speaks length-prefixed JSON frames with it over the sandbox's stdin/stdout. For each program it
forks a child (fast: the interpreter and common modules are already loaded; see `_child.py`),
watches its output pipes, the wall clock, the process count and the memory all its processes
hold (a backstop where no memory cgroup bounds the sum: see `_cgroups.py`), then kills and
reaps everything and answers with a verdict.

Why PID 1: the kernel drops signals that other members of a PID namespace send to its init
unless init installed a handler for them, so a program cannot kill the worker (we install none
and put SIGINT back to SIG_DFL); orphans are reparented to us, so `kill(-1, SIGKILL)` plus
reaping until ECHILD removes every process the program left behind (daemons included). The
worker is also non-dumpable, so programs cannot ptrace it or read its /proc/1/{mem,fd,environ}.
"""

import gc
import json
import os
import select
import signal
import struct
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # -I left the script dir out
import _child
import _scratch

del sys.path[0]  # programs must not see the harness directory on their path

REPORT_MAX = 8192  # bytes read from the report pipe; the harness's report is much shorter
GUARD_INTERVAL_S = 0.02  # how often the process and memory guards look at /proc during a run
PRELOAD = (
    "typing", "collections", "math", "itertools", "functools", "re", "string", "heapq",
    "bisect", "copy", "random", "json", "dataclasses", "fractions", "decimal", "statistics",
    "hashlib", "operator", "datetime", "io", "textwrap", "unittest",
)  # fmt: skip


def read_frame(fd):
    header = _read_exact(fd, 4)
    if header is None:
        return None
    body = _read_exact(fd, struct.unpack(">I", header)[0])
    return None if body is None else json.loads(body)


def _read_exact(fd, n):
    chunks = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def write_frame(fd, obj):
    data = json.dumps(obj).encode()
    data = struct.pack(">I", len(data)) + data
    while data:
        data = data[os.write(fd, data) :]


class _Capture:
    """One output pipe: counts every byte, keeps only the first `keep`."""

    def __init__(self, keep):
        self.keep, self.total, self.chunks = keep, 0, []

    def add(self, data):
        room = self.keep - sum(map(len, self.chunks))
        if room > 0:
            self.chunks.append(data[:room])
        self.total += len(data)

    def text(self):
        return b"".join(self.chunks).decode("utf-8", "replace")


def _count_processes():
    return sum(1 for name in os.listdir("/proc") if name.isdigit()) - 1  # minus ourselves


def _resident_bytes():
    """The program's memory: the proportional set size (shared pages split between the
    processes that share them, so forked children are not counted twice) of every process in
    the namespace but ours. Processes that end while we look are skipped."""
    total = 0
    for name in os.listdir("/proc"):
        if not name.isdigit() or name == "1":
            continue
        try:
            with open(f"/proc/{name}/smaps_rollup", "rb") as fh:
                for line in fh:
                    if line.startswith(b"Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except (OSError, ValueError):
            continue
    return total


def _kill_everything(child, status):
    """SIGKILL every process in the namespace but us and reap until none is left."""
    while True:
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            pid, st, _ = os.wait4(-1, 0)
        except ChildProcessError:
            return status
        if pid == child and status is None:
            status = st


def _drain(fd, capture, limit):
    while capture.total <= limit:
        data = os.read(fd, 65536)
        if not data:
            break
        capture.add(data)


def _reap(child):
    """Reap what has exited (orphans are reparented to us); (status, rusage) if `child` did."""
    while True:
        try:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return None
        if pid == 0:
            return None
        if pid == child:
            return status, usage


def _watch(pid, pipes, cfg, caps):
    """Wait for the child to exit, the deadline, or too much output, processes or memory."""
    deadline = time.monotonic() + cfg["timeout_s"]
    next_memory_look = 0.0
    pidfd = os.pidfd_open(pid)  # readable once the child exits: wakes the poll below
    poller = select.poll()
    for fd in (*pipes, pidfd):
        poller.register(fd, select.POLLIN)
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout", None, None
            for fd, _ in poller.poll(min(left, GUARD_INTERVAL_S) * 1000):
                if fd == pidfd:
                    continue
                data = os.read(fd, 65536)
                if not data:
                    poller.unregister(fd)
                elif fd in caps:
                    caps[fd].add(data)
                    if caps[fd].total > cfg["max_output_bytes"]:
                        return "output", None, None
                elif len(caps["report"]) < REPORT_MAX:  # the program can write there too
                    caps["report"] += data
            exited = _reap(pid)
            # Counted after the exit too: what it left running counts, and so do bursts
            # between two looks.
            if _count_processes() > cfg["max_processes"]:
                return "processes", *(exited or (None, None))
            if not exited and time.monotonic() >= next_memory_look:  # not at every read
                next_memory_look = time.monotonic() + GUARD_INTERVAL_S
                if _resident_bytes() > cfg["memory_bytes"]:
                    return "memory", None, None
            if exited:
                return None, *exited
    finally:
        os.close(pidfd)


def _verdict(event, status, usage, report, nonce, pid, cfg):
    if event == "timeout":
        return "timeout", f"exceeded the wall-clock limit of {cfg['timeout_s']}s"
    if event == "output":
        return "fail", f"output limit exceeded (more than {cfg['max_output_bytes']} bytes)"
    if event == "processes":
        return "fail", f"process limit exceeded (more than {cfg['max_processes']})"
    if event == "memory":
        limit = cfg["memory_bytes"]
        return "fail", f"memory limit exceeded (more than {limit} bytes in all its processes)"
    outcome = report.get("outcome")
    if outcome == "finished" and report.get("nonce") == nonce and report.get("pid") == pid:
        if os.waitstatus_to_exitcode(status) == 0:
            return "pass", ""
        return "fail", "the process did not exit cleanly after the program finished"
    if outcome == "compile":
        return "error", report.get("error", "")
    if outcome == "harness":
        return "infra_error", report.get("error", "")
    if outcome == "exception":
        return "fail", report.get("error", "")
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        cpu = usage.ru_utime + usage.ru_stime
        if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= cfg["cpu_time_s"]):
            return "timeout", f"exceeded the CPU time limit of {cfg['cpu_time_s']}s"
        return "fail", f"killed by {signal.Signals(sig).name}"
    code = os.waitstatus_to_exitcode(status)
    return "fail", f"exited with status {code} before the program finished"


def run_one(code, cfg):
    nonce = os.urandom(16).hex()
    os.mkdir(_child.WORKDIR, 0o700)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    rep_r, rep_w = os.pipe()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            _child.run_child(code, (out_w, err_w, rep_w), nonce, cfg)
        finally:
            os._exit(3)
    for fd in (out_w, err_w, rep_w):
        os.close(fd)
    keep = cfg["keep_output_bytes"]
    caps = {out_r: _Capture(keep), err_r: _Capture(keep), "report": b""}
    event, status, usage = _watch(pid, (out_r, err_r, rep_r), cfg, caps)
    duration = time.monotonic() - start
    status = _kill_everything(pid, status)
    for fd in (out_r, err_r):
        _drain(fd, caps[fd], cfg["max_output_bytes"])
    caps["report"] += os.read(rep_r, REPORT_MAX)
    for fd in (out_r, err_r, rep_r):
        os.close(fd)
    try:
        report = json.loads(caps["report"] or b"{}")
    except ValueError:
        report = {}
    verdict, error = _verdict(event, status, usage, report, nonce, pid, cfg)
    return {
        "status": verdict,
        "error": error,
        "duration_s": round(duration, 6),
        "exit_code": None if status is None else os.waitstatus_to_exitcode(status),
        "stdout": caps[out_r].text(),
        "stderr": caps[err_r].text(),
        "recycle": not _scratch.wipe(cfg["scratch_mounts"]) or _scratch.ipc_left(),
    }


def main():
    cfg = json.loads(sys.argv[1])
    # Default disposition: the kernel then drops SIGINT sent to PID 1 from inside the namespace.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    _child.set_dumpable(0)
    proto = (os.dup(0), os.dup(1))
    null = os.open("/dev/null", os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    sys.path.extend(cfg["python_paths"])
    for name in PRELOAD:
        __import__(name)
    gc.freeze()  # fewer copy-on-write page faults in the children
    write_frame(proto[1], {"ready": True, "python": sys.version})
    while (request := read_frame(proto[0])) is not None:
        try:
            result = run_one(request["code"], cfg)
        # A worker bug: report it as infrastructure, and start afresh.
        except Exception:  # noqa: BLE001
            result = {
                "status": "infra_error",
                "error": traceback.format_exc()[-500:],
                "recycle": True,
            }
        write_frame(proto[1], result)
        if result.get("recycle"):
            return


if __name__ == "__main__":
    main()
