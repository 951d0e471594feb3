"""`builder sandbox exec`: run programs in a sandbox exactly as the pipeline would, one JSON
result per program on stdout (id, status, duration, truncated stdout and stderr)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from builder.errors import BuilderError

# stdout/stderr kept per result line: enough to see why it failed, small enough to read.
_SHOWN_CHARACTERS = 2000


def register(commands) -> None:
    sandbox = commands.add_parser("sandbox", help="run programs in a sandbox")
    sandbox_commands = sandbox.add_subparsers(dest="sandbox_command", required=True)
    execute = sandbox_commands.add_parser("exec", help="run programs as the pipeline would")
    execute.add_argument("file", nargs="?", help="one Python file")
    execute.add_argument("--jsonl", help='programs, one {"id", "code"} per line')
    execute.add_argument("--backend", default="local", help="local, docker or e2b")
    execute.add_argument("--timeout", type=float, default=10.0, help="wall-clock seconds each")
    execute.set_defaults(handler=cmd_exec)


def cmd_exec(args) -> int:
    exec_programs(args.file, args.jsonl, args.backend, args.timeout)
    return 0


def read_programs(file: str | None, jsonl: str | None) -> list:
    from builder.sandbox import Program

    if (file is None) == (jsonl is None):
        raise BuilderError("sandbox exec takes one Python FILE or --jsonl FILE")
    path = Path(file or jsonl)
    if not path.is_file():
        raise BuilderError(f"no such file: {path}")
    if file is not None:
        return [Program(id=path.name, code=path.read_text())]
    programs = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            programs.append(Program(id=str(record["id"]), code=record["code"]))
        except (json.JSONDecodeError, KeyError, TypeError):
            raise BuilderError(f'{path}:{number}: expected {{"id": ..., "code": ...}}') from None
    return programs


def exec_programs(file: str | None, jsonl: str | None, backend: str, timeout: float) -> None:
    from builder.sandbox import SandboxLimits, get_sandbox

    limits = SandboxLimits.for_timeout(timeout)  # first: a bad --timeout is a one-line error
    programs = read_programs(file, jsonl)
    with get_sandbox(backend, limits=limits) as sandbox:
        for result in sandbox.run(programs):
            record = {
                "id": result.id,
                "status": result.status,
                "duration_s": round(result.duration_s, 3),
                "exit_code": result.exit_code,
                "error": result.error,
                "stdout": result.stdout[:_SHOWN_CHARACTERS],
                "stderr": result.stderr[:_SHOWN_CHARACTERS],
            }
            sys.stdout.write(json.dumps(record) + "\n")
