"""What a forked sandbox child does to run one program; runs INSIDE the sandbox, stdlib only.

Imported by `_worker.py` (as a top-level module: both files are bound read-only into the
sandbox at /opt/harness). `run_child` turns the fork of the worker into a clean process (own
session, rlimits, fresh cwd, cleared environment, new stdio), compiles the program with
asserts forced on, executes it as `__main__`, and reports the outcome on a pipe.

A pass must be earned: "finished" is reported, with the per-run random nonce the worker
chose, on a pipe the program is not told about (parked at fd 1023), only after the program's
code object returned normally in the original process; the worker also requires exit status 0.
Every early exit (sys.exit, os._exit, exec of another interpreter e.g. with -O, a thread that
exits the process, an atexit/excepthook trick) never reaches that point. A program that
deliberately introspects the interpreter (frames, gc) to find the nonce and fd could forge it;
that is out of scope (see builder.sandbox.local).
"""

import ctypes
import gc
import json
import os
import signal
import sys
import traceback
import types

PR_SET_DUMPABLE = 4
WORKDIR = "/tmp/work"
REPORT_FD = 1023  # where the child parks its report pipe, away from the fds programs use
# Compile errors mean the program could not run at all ("error", not "fail"). ValueError covers
# NUL bytes and lone surrogates in the source.
COMPILE_ERRORS = (SyntaxError, ValueError, OverflowError, MemoryError, RecursionError)


def set_dumpable(value):
    """prctl(PR_SET_DUMPABLE): a non-dumpable process cannot be ptraced or read via /proc."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, value, 0, 0, 0)


def _set_limits(cfg):
    import resource

    cpu = int(cfg["cpu_time_s"])
    limits = {
        resource.RLIMIT_CPU: (cpu, cpu + 1),  # SIGXCPU at the soft limit, SIGKILL a second later
        resource.RLIMIT_AS: (cfg["memory_bytes"],) * 2,
        # +1: the worker itself runs as the same user in this user namespace and is counted.
        resource.RLIMIT_NPROC: (cfg["max_processes"] + 1,) * 2,
        resource.RLIMIT_FSIZE: (cfg["max_file_size"],) * 2,
        resource.RLIMIT_NOFILE: (cfg["max_open_files"],) * 2,
        resource.RLIMIT_CORE: (0, 0),
    }
    for kind, value in limits.items():
        resource.setrlimit(kind, value)


def _report(outcome, nonce, error=""):
    msg = json.dumps({"outcome": outcome, "nonce": nonce, "pid": os.getpid(), "error": error})
    os.write(REPORT_FD, msg.encode()[:4000])


def _flush_std():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001, S110
            pass


def _summary(exc):
    try:
        if isinstance(exc, SystemExit):
            return f"SystemExit({exc.code!r}): the program exited before it finished"[:300]
        return traceback.format_exception_only(type(exc), exc)[-1].strip()[:300]
    except BaseException:  # noqa: BLE001
        return type(exc).__name__


def _oom_first():
    """When the sandbox's memory cgroup is full, its OOM killer takes the largest process by
    score: make that the program's (any process it forks inherits this), never the worker.
    Raising one's own score needs no privilege."""
    try:
        with open("/proc/self/oom_score_adj", "w") as fh:
            fh.write("1000")
    except OSError:
        pass


def _prepare_child(fds, cfg):
    """Turn the forked worker into a clean process for one program."""
    out_w, err_w, rep_w = fds
    os.setsid()  # own session and process group: killpg(0) hits only the program
    os.dup2(rep_w, REPORT_FD)
    null = os.open("/dev/null", os.O_RDONLY)
    for src, dst in ((null, 0), (out_w, 1), (err_w, 2)):
        os.dup2(src, dst)
    # Everything else the worker had open (its protocol pipes above all) is none of its business.
    os.closerange(3, REPORT_FD)
    _set_limits(cfg)
    _oom_first()
    os.chdir(WORKDIR)
    os.environ.clear()
    os.environ.update(
        PATH="/usr/local/bin:/usr/bin:/bin", HOME=WORKDIR, TMPDIR="/tmp", LANG="C.UTF-8"
    )
    signal.signal(signal.SIGINT, signal.default_int_handler)
    set_dumpable(1)
    # Fresh stdio objects: nothing buffered in the worker's may leak into the program's output.
    sys.stdin = sys.__stdin__ = open(0, closefd=False)  # noqa: SIM115
    sys.stdout = sys.__stdout__ = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stderr = sys.__stderr__ = open(  # noqa: SIM115
        2, "w", encoding="utf-8", buffering=1, closefd=False
    )
    sys.argv = ["solution.py"]
    sys.path.insert(0, WORKDIR)
    gc.unfreeze()


def _asserts_work():
    if sys.flags.optimize:
        return False
    try:
        assert False
    except AssertionError:
        return True
    return False


def _join_threads():
    """Wait for non-daemon threads, as the interpreter does before it exits."""
    threading = sys.modules.get("threading")
    if threading is not None:
        threading._shutdown()


def run_child(code, fds, nonce, cfg):
    """Body of the forked child: never returns."""
    try:
        _prepare_child(fds, cfg)
        if not _asserts_work():
            _report("harness", nonce, "assertions are disabled in the sandbox interpreter")
            os._exit(3)
        path = os.path.join(WORKDIR, "solution.py")
        try:  # optimize=0: asserts stay compiled in whatever the interpreter flags say
            with open(path, "w", encoding="utf-8") as fh:  # for tracebacks, inspect, __file__
                fh.write(code)
            code_obj = compile(code, path, "exec", dont_inherit=True, optimize=0)
        except COMPILE_ERRORS as exc:
            traceback.print_exception(type(exc), exc, None)
            _flush_std()
            _report("compile", nonce, _summary(exc))
            os._exit(1)
        module = types.ModuleType("__main__")
        module.__file__ = path
        sys.modules["__main__"] = module
        pid = os.getpid()
    except BaseException as exc:  # noqa: BLE001
        _report("harness", nonce, f"sandbox child setup failed: {exc!r}"[:300])
        os._exit(3)
    try:
        exec(code_obj, module.__dict__)  # noqa: S102 - running it is the point
        _join_threads()
    # SystemExit included: exiting early is not finishing.
    except BaseException as exc:  # noqa: BLE001
        if os.getpid() != pid:  # a fork of the program unwound into here; it may not report
            os._exit(1)
        _flush_std()
        try:  # tb_next: leave our own frame out, as a plain `python solution.py` would
            traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next)
        except BaseException:  # noqa: BLE001, S110
            pass
        _flush_std()
        _report("exception", nonce, _summary(exc))
        os._exit(1)
    if os.getpid() != pid:
        os._exit(0)
    _flush_std()
    _report("finished", nonce)
    os._exit(0)
