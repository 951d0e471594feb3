"""The imports a function needs to stand alone, inferred by `autoimport`, in a killable process.

`autoimport` (the tool of the published pipeline) runs pyflakes over the code and, for each
undefined name, adds an import it finds, in this order: a short table of its own (`Path` ->
`from pathlib import Path`, `datetime` -> `from datetime import datetime`, ...), a module of that
name installed in the running environment (`re` -> `import re`, `numpy` -> `import numpy` when
numpy is installed), a name of `typing` (`Optional` -> `from typing import Optional`). Names
it cannot place (module globals of the original file, aliases such as `np`) stay undefined, and
Pyright catches them in the next stage. Three changes to its defaults, all for reproducibility:

- imports inside the function stay where they are (its `disable_move_to_top` option): moving
  them to the top breaks functions whose block holds only an import (`try: import x`), and
  leaving them keeps the function text intact, so the output is exactly `imports + function`;
- its lookup of "the project being developed" is off: it names the project after the current
  directory and imports it, which makes the result depend on where the command runs;
- the worker runs with `python -I` in an empty directory, so modules in the current directory
  or on PYTHONPATH are never offered as imports.

`ImportInferrer` runs inference in a child process and kills it when one function takes longer
than the timeout (a thread cannot be stopped; a signal cannot interrupt every C call).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from builder.errors import StageError

log = logging.getLogger(__name__)

_READY = b'"ready"'
_START_TIMEOUT_S = 60.0
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[3])  # the folder holding `builder/`
# How the child starts: an installed `builder` first, else the checkout this file is in.
_CHILD_BOOT = (
    "import sys\n"
    "try:\n"
    "    from builder.stages.seeds.import_inference import serve\n"
    "except ImportError:\n"
    f"    sys.path.append({_PACKAGE_ROOT!r})\n"
    "    from builder.stages.seeds.import_inference import serve\n"
    "serve()\n"
)


@dataclass(frozen=True)
class Inferred:
    imports: list[str]  # the import lines added, in autoimport's order
    code: str  # the imports, two blank lines, then the function unchanged


@dataclass(frozen=True)
class NotInferred:
    reason: str  # import_timeout or import_failed
    detail: str


def infer_imports(function: str) -> Inferred:
    """The imports `function` needs (runs in the calling process: no timeout)."""
    source = _standalone_source_class()(function, config={"disable_move_to_top": True})
    code = source.fix()
    imports = [line.strip() for line in source.imports if line.strip()]
    return Inferred(imports, code)


@functools.cache
def _standalone_source_class() -> type:
    from autoimport.model import SourceCode  # heavy-ish: only where inference runs

    class StandaloneSource(SourceCode):
        @staticmethod
        def _find_package_in_our_project(name: str) -> str | None:
            return None  # see the module docstring: depends on the current directory

        @staticmethod
        def _find_package_in_typing(name: str) -> str | None:
            return _typing_objects().get(name)

    return StandaloneSource


@functools.cache
def _typing_objects() -> dict[str, str]:
    # autoimport walks every member of `typing` for each undefined name; once is enough.
    from autoimport.model import extract_package_objects

    return extract_package_objects("typing")


class ImportInferrer:
    """`infer_imports` in a child process that is killed and replaced when it is too slow."""

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self._proc: subprocess.Popen | None = None
        self._buffer = b""
        self._cwd = tempfile.mkdtemp(prefix="imports-")

    def infer(self, function: str) -> Inferred | NotInferred:
        if self._proc is None or self._proc.poll() is not None:
            self._start()
        try:
            self._proc.stdin.write(json.dumps({"function": function}).encode() + b"\n")
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self._stop()
            return NotInferred("import_failed", "the import inference process died")
        line = self._read_line(self.timeout_s)
        if line is None:
            timed_out = self._proc.poll() is None
            self._stop()
            if timed_out:
                log.warning("import inference: killed after %gs on one function", self.timeout_s)
                return NotInferred("import_timeout", f"took more than {self.timeout_s:g}s")
            return NotInferred("import_failed", "the import inference process died")
        answer = json.loads(line)
        if "error" in answer:
            return NotInferred("import_failed", answer["error"][:300])
        return Inferred(answer["imports"], answer["code"])

    def close(self) -> None:
        self._stop()
        shutil.rmtree(self._cwd, ignore_errors=True)

    def _start(self) -> None:
        """A fresh child, once it has loaded autoimport (its start-up is no function's time)."""
        self._buffer = b""
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-c", _CHILD_BOOT],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=self._cwd,
        )
        if self._read_line(max(self.timeout_s, _START_TIMEOUT_S)) != _READY:
            self._stop()
            raise StageError("the import inference process did not start (is autoimport installed?)")

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.wait()
            for stream in (proc.stdin, proc.stdout):
                try:
                    stream.close()
                except OSError:
                    pass

    def _read_line(self, timeout_s: float) -> bytes | None:
        """The child's next line; None when it is late or gone."""
        deadline = time.monotonic() + timeout_s
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                return None
            data = os.read(fd, 1 << 16)
            if not data:
                return None
            self._buffer += data
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line


def serve() -> None:
    """The child: one JSON request per line on stdin, one JSON answer per line on stdout."""
    out = sys.stdout.buffer
    _typing_objects()  # load autoimport and its lookup table before saying ready
    out.write(_READY + b"\n")
    out.flush()
    for line in sys.stdin.buffer:
        function = json.loads(line)["function"]
        try:
            inferred = infer_imports(function)
            answer = {"imports": inferred.imports, "code": inferred.code}
        except Exception as err:  # noqa: BLE001 - any failure of the tool drops this function only
            answer = {"error": f"{type(err).__name__}: {err}"}
        out.write(json.dumps(answer).encode() + b"\n")
        out.flush()
