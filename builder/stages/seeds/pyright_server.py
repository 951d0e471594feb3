"""A warm Pyright language server, so that checking a function does not pay Pyright's start-up.

A one-shot `pyright` run spends most of its time on work that does not depend on the files it
checks (starting Node.js, loading and compiling Pyright, parsing and binding `builtins.pyi`, the
typeshed stubs and the library sources the functions import). The language server keeps all that
in memory. It holds one in-memory document, `check-function.py`: each function in turn becomes its
text (`textDocument/didChange`) and its diagnostics are pulled (`textDocument/diagnostic`,
answered once the document is checked).

Each function is checked as if it were alone. Pyright's inferred types are not always the same
whatever was evaluated before (inference through unannotated library code can stop at a
different point), so a function checked in one program after others can get other errors than
alone, or none: on one sympy function here, four `reportArgumentType` errors alone and none after
a function that calls `sympy.linsolve`, which is what a command-line run over both files gives
(`tests/test_typecheck.py`).
Pyright throws its whole type cache away whenever a document changes; the server asks for a
function's diagnostics right after putting it in the document, and waits for them before the
next change, so every function starts from an empty type cache. What carries over from one
function to the next is only what never depends on order: parsed and bound modules, resolved
imports. The price: sharing the cache between the functions of a batch of 250 checked
1.3-1.9x faster (`benchmarks/bench_typecheck.py`, before this change).

The document is never closed: closing one makes Pyright scan every module it holds, to drop
those no open document imports any more, and that scan grows with the modules loaded. It lies
outside the workspace folder, which holds only `pyrightconfig.json`, so it is never a project
file, and its name has hyphens, so no function can import it.

The server reads the same `pyrightconfig.json` and interpreter as the command line
(`pyright_setup`), so its findings are the command line's for a file checked alone. A function
whose check takes longer than `timeout_s`, or that kills the server, gets a `Failure` instead of
findings; the next function gets a fresh server. The server exits with the process that started
it (LSP `processId`).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from builder.stages.seeds.pyright_setup import (
    Finding,
    finding_from_lsp,
    node_binary,
    pyright_dist,
    write_config,
)

log = logging.getLogger(__name__)

_START_TIMEOUT_S = 60.0  # starting the server is nobody's fault: it gets at least this long
DOCUMENT_NAME = "check-function.py"
# A server is replaced after this many functions, so that whatever it caches stays bounded
# (a fresh server gives the same verdicts; it only has to warm up again).
_RECYCLE_AFTER = 50_000


@dataclass(frozen=True)
class Failure:
    """Pyright gave no verdict for a function (too slow, or the server died on it)."""

    reason: str  # typecheck_timeout or typecheck_crash
    detail: str


class _NoAnswer(Exception):
    def __init__(self, failure: Failure):
        self.failure = failure


class PyrightServer:
    """One Pyright language server process, started on first use; use it from one thread."""

    def __init__(self, settings: dict, timeout_s: float):
        self.settings = settings
        self.timeout_s = timeout_s
        self._root = Path(tempfile.mkdtemp(prefix="pyright-seeds-"))
        self._project = self._root / "project"  # the workspace: pyrightconfig.json, no files
        self._project.mkdir()
        write_config(self._project, settings)
        # where the document says it is: outside the workspace
        self._document = (self._root / "documents" / DOCUMENT_NAME).as_uri()
        self._version = 0  # of the document in the current server; 0: not open yet
        self._proc: subprocess.Popen | None = None
        self._ids = itertools.count(1)
        self._write_lock = threading.Lock()
        self._answers: dict[int, dict] = {}
        self._answered = threading.Condition()
        self._checked = 0  # functions checked by the current server

    def check(self, texts: dict[str, str]) -> dict[str, list[Finding] | Failure]:
        """Errors of each text, by key, each text checked as if alone (see the module docstring).

        A text that gets no answer within `timeout_s`, or that kills the server, gets a Failure;
        the next text gets a fresh server.
        """
        results: dict[str, list[Finding] | Failure] = {}
        for key, text in texts.items():
            if self._checked >= _RECYCLE_AFTER:
                self._stop()
            try:
                self._ensure_started()
                results[key] = self._check_one(text)
            except _NoAnswer as no_answer:
                log.warning("pyright gave no verdict for %s: %s", key, no_answer.failure.detail)
                results[key] = no_answer.failure
                self._stop()
        return results

    def close(self) -> None:
        self._stop()
        shutil.rmtree(self._root, ignore_errors=True)

    def _check_one(self, text: str) -> list[Finding]:
        self._version += 1
        if self._version == 1:
            self._notify("textDocument/didOpen", {"textDocument": {
                "uri": self._document, "languageId": "python", "version": 1, "text": text}})
        else:
            self._notify("textDocument/didChange", {
                "textDocument": {"uri": self._document, "version": self._version},
                "contentChanges": [{"text": text}]})
        # The next change goes only after this answer: sent before, it could reset the type
        # cache ahead of this check, which would then share its cache with the next function.
        report = self._request("textDocument/diagnostic", {"textDocument": {"uri": self._document}})
        self._checked += 1
        findings = (finding_from_lsp(d) for d in report.get("items", []))
        return [f for f in findings if f is not None]

    # -- the server's life --------------------------------------------------------------------

    def _ensure_started(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        self._proc = subprocess.Popen(
            [node_binary(), str(pyright_dist() / "langserver.index.js"), "--stdio"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            cwd=self._project,
        )
        threading.Thread(target=self._read_loop, args=(self._proc,), daemon=True).start()
        self._request("initialize", timeout_s=max(self.timeout_s, _START_TIMEOUT_S), params={
            "processId": os.getpid(),
            "rootUri": self._project.as_uri(),
            "workspaceFolders": [{"uri": self._project.as_uri(), "name": "seeds"}],
            "capabilities": {
                "textDocument": {"diagnostic": {"dynamicRegistration": True}},
                "workspace": {"configuration": True, "workspaceFolders": True},
            },
        })
        self._notify("initialized", {})

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        self._checked = 0
        self._version = 0
        if proc is None:
            return
        proc.kill()  # nothing to save: a polite LSP shutdown only costs time
        proc.wait()
        with self._answered:
            self._answers.clear()  # a late answer to the request that got none in time
        try:
            proc.stdin.close()
        except OSError:
            pass  # its buffer could not be flushed into the dead pipe; nothing is lost
        # stdout is left to the reader thread, which sees its end and returns.

    # -- JSON-RPC over stdio ------------------------------------------------------------------

    def _request(self, method: str, params: dict, timeout_s: float | None = None) -> dict:
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        request_id = next(self._ids)
        self._send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        proc = self._proc
        with self._answered:
            answered = self._answered.wait_for(
                lambda: request_id in self._answers or proc.poll() is not None,
                timeout=timeout_s,
            )
            answer = self._answers.pop(request_id, None)
        if answer is None:
            if answered:
                raise _NoAnswer(Failure("typecheck_crash", f"Pyright exited during {method}"))
            raise _NoAnswer(Failure("typecheck_timeout", f"no answer within {timeout_s:g}s"))
        if "error" in answer:
            message = answer["error"].get("message", "")
            raise _NoAnswer(Failure("typecheck_crash", f"{method} failed: {message}"[:300]))
        return answer.get("result") or {}

    def _notify(self, method: str, params: dict) -> None:
        self._send({"jsonrpc": "2.0", "method": method, "params": params})

    def _send(self, message: dict) -> None:
        body = json.dumps(message).encode()
        with self._write_lock:
            try:
                self._proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
                self._proc.stdin.flush()
            except (BrokenPipeError, OSError, AttributeError):
                raise _NoAnswer(Failure("typecheck_crash", "Pyright is not running")) from None

    def _read_loop(self, proc: subprocess.Popen) -> None:
        """Runs in a thread: files answers, and answers the server's own requests."""
        stream = proc.stdout
        try:
            while (message := _read_message(stream)) is not None:
                if "method" in message and "id" in message:
                    self._answer_server(proc, message)
                elif "id" in message:
                    with self._answered:
                        self._answers[message["id"]] = message
                        self._answered.notify_all()
        except (OSError, ValueError):
            pass  # the stream was closed under us: the server was stopped
        with self._answered:
            self._answered.notify_all()  # wake a waiter: the server is gone

    def _answer_server(self, proc: subprocess.Popen, message: dict) -> None:
        result = None
        if message["method"] == "workspace/configuration":
            result = [self._configuration(item.get("section")) for item in message["params"]["items"]]
        reply = json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}).encode()
        with self._write_lock:
            if proc is self._proc:
                proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(reply) + reply)
                proc.stdin.flush()

    def _configuration(self, section: str | None) -> dict:
        # pyrightconfig.json in the root wins over these for analysis settings; the interpreter
        # can only be given here (the command line gets it as --pythonpath).
        if section == "python":
            return {"pythonPath": sys.executable, "analysis": {"diagnosticMode": "openFilesOnly"}}
        return {}


def _read_message(stream) -> dict | None:
    length = None
    while True:
        line = stream.readline()
        if not line:
            return None
        line = line.strip()
        if not line:
            break
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    if length is None:
        raise ValueError("a message without Content-Length")
    return json.loads(stream.read(length))
