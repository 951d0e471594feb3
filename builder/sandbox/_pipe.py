"""The host's end of one sandbox worker's pipes: what a bwrap worker and a container share.

The worker (`_worker.py`, PID 1 of its sandbox or container) reads length-prefixed JSON frames,
one program each, on its stdin and answers one frame each on its stdout. The host may send a
few programs ahead (the worker reads the next frame only when it is done with the current one);
all reads and writes go through one poll loop, so a full pipe in one direction never blocks the
other. `FramedWorker` is the small interface the pool's slots (`_pool.Slot`) talk to: send a
program, receive the next frame before a deadline, close, kill.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import struct
import subprocess
import time
from typing import IO


class InfraError(Exception):
    """The sandbox failed, not the program: retried, and never a verdict on the program."""


class FramedWorker:
    """A started worker process, seen through its stdin/stdout. Not thread-safe: one owner thread
    sends, receives and closes; only `kill` may come from another thread."""

    what = "the sandbox worker"  # for messages: which worker this is
    close_wait_s = 2.0  # after EOF on its stdin, how long the worker may take to end

    def _attach(self, proc: subprocess.Popen, stderr: IO[bytes]) -> None:
        """Start talking to `proc` (stdin and stdout pipes; stderr goes to the file `stderr`)."""
        self.proc, self._stderr = proc, stderr
        self._in, self._out = proc.stdin.fileno(), proc.stdout.fileno()
        flags = fcntl.fcntl(self._in, fcntl.F_GETFL)
        fcntl.fcntl(self._in, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        self._pending = bytearray()  # frames not yet written to the worker
        self._buf = bytearray()  # bytes read, not yet parsed into frames

    def expect_ready(self, deadline: float) -> None:
        ready = self.receive(deadline)
        if not ready.get("ready"):
            raise InfraError(f"{self.what} sent {ready!r} instead of ready")

    def send(self, code: str) -> None:
        data = json.dumps({"code": code}).encode()
        self._pending += struct.pack(">I", len(data)) + data
        self._pump(0)

    def receive(self, deadline: float) -> dict:
        """The next frame from the worker (`deadline`: time.monotonic()); InfraError past it or
        if the worker ended."""
        while True:
            if len(self._buf) >= 4:
                size = struct.unpack(">I", self._buf[:4])[0]
                if len(self._buf) >= 4 + size:
                    body = bytes(self._buf[4 : 4 + size])
                    del self._buf[: 4 + size]
                    return json.loads(body)
            left = deadline - time.monotonic()
            if left <= 0:
                raise InfraError(f"no answer from {self.what} in time")
            self._pump(left)

    def _pump(self, timeout: float) -> None:
        """Write pending bytes and read what is there, waiting up to `timeout` for either."""
        poller = select.poll()
        poller.register(self._out, select.POLLIN)
        if self._pending:
            poller.register(self._in, select.POLLOUT)
        for fd, _ in poller.poll(timeout * 1000):
            if fd == self._in:
                self._write_some()
            elif (chunk := os.read(self._out, 1 << 16)) == b"":
                raise InfraError(f"{self.what} ended: {self._exit_reason()}")
            else:
                self._buf += chunk

    def _write_some(self) -> None:
        try:
            written = os.write(self._in, self._pending[: 1 << 16])
        except BlockingIOError:
            return
        except OSError as exc:  # it went away: the read side will say why
            raise InfraError(f"cannot send to {self.what}: {exc}") from None
        del self._pending[:written]

    def _exit_reason(self) -> str:
        try:
            status = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            status = "unknown (still running)"
        return f"exit status {status}: {self.stderr_tail()}"

    def stderr_tail(self, size: int = 500) -> str:
        """The end of what the worker (or the tool that started it) wrote on stderr, one line."""
        self._stderr.seek(0, os.SEEK_END)
        self._stderr.seek(max(0, self._stderr.tell() - size))
        return " ".join(self._stderr.read().decode("utf-8", "replace").split())

    def close(self) -> None:
        """EOF on stdin ends the worker (PID 1), and so its sandbox; kill it if that is slow."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=self.close_wait_s)
        except subprocess.TimeoutExpired:
            self.kill()
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self._stderr.close()

    def kill(self) -> None:
        """End the worker and everything in its sandbox now. Safe from any thread: it touches no
        pipe, so the owner's receive() sees the end and the owner still calls close()."""
        self.proc.kill()
