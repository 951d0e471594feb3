"""A warm Pyright language server, so that checking a function does not pay Pyright's start-up.

A one-shot `pyright` run spends most of its time on work that does not depend on the files it
checks (starting Node.js, loading and compiling Pyright, parsing and binding `builtins.pyi`, the
typeshed stubs and the library sources the functions import). The language server keeps all that
in memory and checks one function per in-memory document, its diagnostics pulled
(`textDocument/diagnostic`, answered only once the document is checked).

The documents are slots: `slot-0.py`, `slot-1.py`..., one per function of a batch, opened once and
given the next batch's functions with `textDocument/didChange`; they are never closed. Closing a
document makes Pyright scan every module it holds, to drop those that no open document imports
any more (which the next function that imports them then pays to load again); that scan grows
with the modules loaded, and functions that import numpy or torch load thousands. With slots,
each module is loaded once per server and the documents never outnumber a batch (on 8,000
standard-library and site-packages functions, one server: 150 functions/s and 3.7 GB at most,
against 127 functions/s and 4.0 GB opening and closing one document per function). A slot's
name has a hyphen, so no function can import another; the slots lie outside the workspace
folder, which holds only `pyrightconfig.json`, so they are never project files.

The server reads the same `pyrightconfig.json` and interpreter as the command line
(`pyright_setup`), so its findings are the command line's. A function whose check takes longer
than `timeout_s`, or that kills the server, gets a `Failure` instead of findings; the server is
restarted for the rest. The server exits with the process that started it (LSP `processId`).
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

from builder.seeds.pyright_setup import (
    Finding,
    finding_from_lsp,
    node_binary,
    pyright_dist,
    write_config,
)

log = logging.getLogger(__name__)

_START_TIMEOUT_S = 60.0  # starting the server is nobody's fault: it gets at least this long
SLOT_PREFIX = "slot-"
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
        self._docs = self._root / "documents"  # where the slots say they are: outside it
        self._slot_versions: list[int] = []  # of each slot open in the current server
        self._proc: subprocess.Popen | None = None
        self._ids = itertools.count(1)
        self._write_lock = threading.Lock()
        self._answers: dict[int, dict] = {}
        self._answered = threading.Condition()
        self._checked = 0  # functions checked by the current server

    def check(self, texts: dict[str, str]) -> dict[str, list[Finding] | Failure]:
        """Errors of each text, by key.

        All texts are put in their slots, then checked one by one (the requests pipelined). If
        the server does not answer for one of them, the batch is checked again one text at a
        time on a fresh server, so that the failure is pinned on the text that caused it and the
        others still get their verdicts.
        """
        if self._checked >= _RECYCLE_AFTER:
            self._stop()
        try:
            self._ensure_started()
            return self._check_batch(texts)
        except _NoAnswer as no_answer:
            log.warning("pyright: %s; checking this batch one function at a time",
                        no_answer.failure.detail)
            self._stop()
        results: dict[str, list[Finding] | Failure] = {}
        for key, text in texts.items():
            try:
                self._ensure_started()
                results.update(self._check_batch({key: text}))
            except _NoAnswer as no_answer:
                log.warning("pyright gave no verdict for %s: %s", key, no_answer.failure.detail)
                results[key] = no_answer.failure
                self._stop()  # the next function gets a fresh server
        return results

    def close(self) -> None:
        self._stop()
        shutil.rmtree(self._root, ignore_errors=True)

    # -- one function -------------------------------------------------------------------------

    def _check_batch(self, texts: dict[str, str]) -> dict[str, list[Finding]]:
        uris = [self._fill_slot(slot, text) for slot, text in enumerate(texts.values())]
        # Every request goes out at once, so that the server never sits waiting for the next one
        # (about a tenth of its time otherwise). It answers them in order, so each function
        # still gets `timeout_s`, counted from the answer before its own.
        requests = [self._send_request("textDocument/diagnostic", {"textDocument": {"uri": uri}})
                    for uri in uris]
        results = {}
        for key, request_id in zip(texts, requests):
            report = self._await(request_id, "textDocument/diagnostic")
            findings = (finding_from_lsp(d) for d in report.get("items", []))
            results[key] = [f for f in findings if f is not None]
        self._checked += len(texts)
        return results

    def _fill_slot(self, slot: int, text: str) -> str:
        """Puts `text` in the slot's document (opening it the first time); its URI."""
        uri = (self._docs / f"{SLOT_PREFIX}{slot}.py").as_uri()
        if slot < len(self._slot_versions):
            self._slot_versions[slot] += 1
            self._notify("textDocument/didChange", {
                "textDocument": {"uri": uri, "version": self._slot_versions[slot]},
                "contentChanges": [{"text": text}]})
        else:
            self._slot_versions.append(1)
            self._notify("textDocument/didOpen", {"textDocument": {
                "uri": uri, "languageId": "python", "version": 1, "text": text}})
        return uri

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
        self._slot_versions = []
        if proc is None:
            return
        proc.kill()  # nothing to save: a polite LSP shutdown only costs time
        proc.wait()
        with self._answered:
            self._answers.clear()  # late answers to the pipelined requests of a failed batch
        try:
            proc.stdin.close()
        except OSError:
            pass  # its buffer could not be flushed into the dead pipe; nothing is lost
        # stdout is left to the reader thread, which sees its end and returns.

    # -- JSON-RPC over stdio ------------------------------------------------------------------

    def _request(self, method: str, params: dict, timeout_s: float | None = None) -> dict:
        return self._await(self._send_request(method, params), method, timeout_s)

    def _send_request(self, method: str, params: dict) -> int:
        request_id = next(self._ids)
        self._send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        return request_id

    def _await(self, request_id: int, method: str, timeout_s: float | None = None) -> dict:
        """The result of a request sent earlier; `timeout_s` counts from now."""
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
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


_shared: PyrightServer | None = None


def shared_server(settings: dict, timeout_s: float) -> PyrightServer:
    """One warm server per process, kept across chunks (and replaced if the settings change),
    closed when the process exits."""
    global _shared
    if _shared is not None and (_shared.settings, _shared.timeout_s) != (settings, timeout_s):
        _shared.close()
        _shared = None
    if _shared is None:
        from multiprocessing.util import Finalize

        _shared = PyrightServer(settings, timeout_s)
        # Finalize, not atexit: pool workers leave through os._exit, which skips atexit.
        Finalize(_shared, _shared.close, exitpriority=10)
    return _shared


def close_shared_server() -> None:
    global _shared
    if _shared is not None:
        _shared.close()
        _shared = None
