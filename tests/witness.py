"""Independent witnesses: test-only engine, sandbox and row stages that write down every sample
prompted, program run and chunk processed, so that tests check work done instead of the
counts the code under test reports about itself.

Each record is one JSON line appended to the witness file with O_APPEND and fsync'd, so it
survives `kill -9` of the process that wrote it. A record is `{"kind", "event", "key", "pid"}`:

- kind `sample` (the `witness` engine): one per sample asked of the engine, `start` before it is
  generated and `done` once the generator's `on_done` (which writes the completion cache) has
  returned; key = prompt digest, seed and sample index. The engine writes `engine`/`open` when
  it is built: a run that finds everything cached never opens it.
- kind `program` (the `witness` sandbox, the local sandbox underneath): `start` when a program is
  handed to the pool, `done` when its verdict is in; key = digest of its code.
- kind `chunk` (`Witnessed_<step>`, a row stage wrapped): `start`/`done` around `process`;
  key = digest of the chunk's rows.
- kind `stored` (the real completion cache, with any real engine; only when a pause names
  `stored`): `done` once `CompletionCache.put` has committed one request's samples; key = the
  request's cache key. A test kills a real vLLM or transformers run at a known cache state.

Kills are synchronised on the file, never on sleeps: with `pause="sample:6"` the witness, before
it starts an item of that kind, stops once the file holds 6 `done` records of it, writes a
`paused` record and waits for `<file>.go` (which a killing test never writes). A test waits for
the `paused` records, then kills: the state at the kill is known exactly.

Nothing here is part of the product: classes are registered through the registries
(`install`), in this process or, for `builder` in a subprocess, through `command()`'s launcher.
Worker processes the product spawns find the witness file in the environment.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

from builder.engines.base import Completion, Engine, cut_at_stop
from builder.engines.cache import CompletionCache
from builder.registry import ENGINES, SANDBOXES, STEPS
from builder.sandbox.local import LocalSandbox
from builder.stages.generation.library import fewshot_examples
from builder.stages.generation.prompting import EXAMPLE_HEADER, render_concepts, render_response

FILE_ENV = "BUILDER_TEST_WITNESS"
PAUSE_ENV = "BUILDER_TEST_WITNESS_PAUSE"  # "kind:N"
ANSWERS_ENV = "BUILDER_TEST_WITNESS_ANSWERS"  # JSON [[needle, completion], ...]
PAUSE_GUARD_S = 600  # a paused witness gives up after this (a test that forgot to kill it)

_ORIGINAL_STEPS = dict(STEPS.entries)  # before any install: what Witnessed_<step> wraps
_ORIGINAL_PUT = CompletionCache.put


# ----------------------------------------------------------------------------- the file


def record(kind: str, event: str, key: str = "") -> None:
    path = os.environ.get(FILE_ENV)
    if not path:
        raise RuntimeError(f"a witness runs without {FILE_ENV}: call tests.witness.install")
    line = json.dumps({"kind": kind, "event": event, "key": key, "pid": os.getpid()}) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines if line.endswith("}")]  # a torn last line: skip


def keys(path: str | Path, kind: str, event: str = "start") -> list[str]:
    """The keys of `kind` records with `event`, in file order (repeats kept)."""
    return [r["key"] for r in read(path) if r["kind"] == kind and r["event"] == event]


def counted(path: str | Path, kind: str, event: str = "start") -> Counter:
    return Counter(keys(path, kind, event))


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _pause(kind: str) -> None:
    """Stop here, before starting an item of `kind`, if the pause is reached (see module doc)."""
    spec = os.environ.get(PAUSE_ENV, "")
    wanted, _, count = spec.partition(":")
    if wanted != kind or len(keys(os.environ[FILE_ENV], kind, "done")) < int(count):
        return
    record(kind, "paused")
    go = Path(os.environ[FILE_ENV] + ".go")
    deadline = time.monotonic() + PAUSE_GUARD_S  # a guard against a forgotten process only
    while not go.exists():
        if time.monotonic() > deadline:
            raise RuntimeError("witness paused and never told to go on")
        time.sleep(0.05)


def wait_until(path: str | Path, condition, process, what: str, log: Path,
               guard_s: float = 300) -> None:
    """Poll the witness file until `condition(records)` holds; fails at once, with the end of
    `log` (where the run writes), if `process` ended. The guard only keeps a broken test from
    hanging: nothing is timed."""
    deadline = time.monotonic() + guard_s
    while not condition(read(path)):
        if process.poll() is not None:
            output = log.read_text(errors="replace")[-3000:]
            raise AssertionError(f"the run ended before {what} (exit {process.returncode}):\n{output}")
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


@contextmanager
def paused_run(path: str | Path, args, pause: str, what: str, processes: int = 1, steps=()):
    """Run `builder ARGS` witnessed, pausing before item `pause` ("kind:N"); the block runs once
    `processes` of its processes wait there, and then the run and everything it started are
    killed -9 (no cleanup of any kind). What finished before the pause is in the witness file
    at `path`; the run's output is in `<path>.log` (a file, not a pipe: vLLM logs more than a
    pipe holds, and a full pipe would stop the run short of its pause)."""
    from tests.helpers import ROOT

    kind = pause.split(":")[0]
    log = Path(f"{path}.log")
    with open(log, "w") as out:
        process = subprocess.Popen(
            command(path, args, steps=steps, pause=pause), cwd=ROOT, start_new_session=True,
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_until(path, lambda r: paused(r, kind) >= processes, process, what, log)
        yield
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:  # it ended on its own: wait_until says why
            pass
        process.wait()


def kill_9_when_paused(path: str | Path, args, pause: str, what: str, processes: int = 1,
                       steps=()) -> None:
    """`paused_run` with nothing done during the pause: the run is killed -9 there."""
    with paused_run(path, args, pause, what, processes, steps):
        pass


def paused(records: list[dict], kind: str) -> int:
    """How many processes are paused before a `kind` item."""
    return len({r["pid"] for r in records if r["kind"] == kind and r["event"] == "paused"})


# ------------------------------------------------------------------------------ install


def install(path: str | Path, steps=(), pause: str | None = None, answers=None) -> None:
    """Register the witness engine (`witness`), sandbox (`witness`) and wrapped `steps` in this
    process, recording into `path`; `answers`: [[needle, completion], ...] the engine gives
    when the last example of a prompt contains the needle (see `answer`)."""
    os.environ[FILE_ENV] = str(path)
    os.environ.pop(PAUSE_ENV, None)
    if pause:
        os.environ[PAUSE_ENV] = pause
    os.environ[ANSWERS_ENV] = json.dumps(answers or [])
    ENGINES.entries["witness"] = f"{__name__}:WitnessEngine"
    SANDBOXES.entries["witness"] = f"{__name__}:WitnessSandbox"
    for step in steps:
        STEPS.entries[step] = f"{__name__}:Witnessed_{step}"
    if pause and pause.startswith("stored:"):
        CompletionCache.put = _witnessed_put


def uninstall() -> None:
    for variable in (FILE_ENV, PAUSE_ENV, ANSWERS_ENV):
        os.environ.pop(variable, None)
    ENGINES.entries.pop("witness", None)
    SANDBOXES.entries.pop("witness", None)
    STEPS.entries.update(_ORIGINAL_STEPS)
    CompletionCache.put = _ORIGINAL_PUT


@contextmanager
def installed(path: str | Path, steps=(), pause: str | None = None, answers=None):
    install(path, steps, pause, answers)
    try:
        yield Path(path)
    finally:
        uninstall()


_LAUNCHER = (
    "import json, sys\nimport tests.witness as w\nw.install(**json.loads(sys.argv[1]))\n"
    "from builder.cli import main\nraise SystemExit(main(sys.argv[2:]))\n"
)


def command(path: str | Path, args, steps=(), pause: str | None = None, answers=None) -> list:
    """`builder ARGS` with the witnesses installed, as a subprocess command line (run it with
    the repository root as working directory)."""
    options = {"path": str(path), "steps": list(steps), "pause": pause, "answers": answers}
    return [sys.executable, "-c", _LAUNCHER, json.dumps(options), *map(str, args)]


# ------------------------------------------------------------------------------- engine


class WitnessEngine(Engine):
    """Answers every prompt at once with text the stages' parsers accept (see `answer`)."""

    backend = "witness"

    def __init__(self, model: str, revision: str | None, config) -> None:
        super().__init__(model, revision, config)
        record("engine", "open", model)

    def _generate(self, requests, on_done) -> None:
        for number, request in enumerate(requests):
            _pause("sample")
            sample_keys = [sample_key(request.prompt, request.seed, i) for i in request.indices]
            for key in sample_keys:
                record("sample", "start", key)
            completions = []
            for index in request.indices:
                text, _ = cut_at_stop(answer(request.prompt, index), request.sampling.stop)
                completions.append(Completion(text, "stop", output_tokens=len(text.split())))
            on_done(number, completions)
            for key in sample_keys:
                record("sample", "done", key)


def sample_key(prompt: str, seed: int, index: int) -> str:
    return f"{digest(prompt)}:{seed}:{index}"


def last_block(prompt: str) -> str:
    """The open query of a few-shot prompt (all of a prompt that has no examples)."""
    return prompt.rsplit(EXAMPLE_HEADER, 1)[-1]


def answer(prompt: str, index: int) -> str:
    """What the witness engine writes: the answer of a test's needle found in the prompt's last
    block; else, for the generation stages, the matching part of one of our few-shot examples,
    chosen so that one seed leads to one example all the way (seed -> its concepts -> that
    example's instruction -> its response): judge "Yes", concepts, instruction, and a response
    whose tests pass for sample 0 and fail for the others; for anything else (evaluation
    prompts) a body that does nothing."""
    block = last_block(prompt)
    for needle, text in json.loads(os.environ.get(ANSWERS_ENV) or "[]"):
        if needle in block:
            return text
    examples = fewshot_examples()
    if prompt.endswith("### Answer\n"):
        return "Yes\n"
    if prompt.endswith("### Concepts\n"):
        return render_concepts(_by_digest(examples, block).concepts) + "\n"
    if prompt.endswith("### Instruction\n"):
        wanted = block.split("concepts:", 1)[-1].split("\n", 1)[0].strip()
        chosen = [e for e in examples if render_concepts(e.concepts) == wanted]
        return (chosen[0] if chosen else _by_digest(examples, block)).instruction + "\n"
    if prompt.endswith("### Response\n"):
        wanted = block.split("### Instruction\n", 1)[-1].rsplit("### Response", 1)[0].strip()
        chosen = [e for e in examples if e.instruction == wanted]
        example = chosen[0] if chosen else _by_digest(examples, block)
        text = render_response(example)
        if index > 0:  # a wrong sample: its own tests fail
            text = text.rstrip().removesuffix("```") + "assert False, 'a wrong sample'\n```"
        return text + "\n"
    return "    pass\n"


def _by_digest(examples, text: str):
    return examples[int(digest(text), 16) % len(examples)]


def _witnessed_put(self, key: str, samples, model: str) -> int:
    """The real cache's put, paused before it and recorded once committed (kind `stored`)."""
    _pause("stored")
    stored = _ORIGINAL_PUT(self, key, samples, model)
    record("stored", "done", key)
    return stored


# ------------------------------------------------------------------------------ sandbox


class WitnessSandbox(LocalSandbox):
    """The local sandbox, recording each program it is handed and each verdict it gives."""

    name = "witness"

    def _submit(self, programs):
        _pause("program")
        for program in programs:
            record("program", "start", digest(program.code))
        jobs = super()._submit(programs)
        for job in jobs:
            key = digest(job.program.code)
            job.future.add_done_callback(lambda _, key=key: record("program", "done", key))
        return jobs


# ------------------------------------------------------------------------------- stages


def _witnessed_process(self, rows):
    key = digest(json.dumps(rows, sort_keys=True, default=str))
    _pause("chunk")
    record("chunk", "start", key)
    result = type(self).__mro__[1].process(self, rows)
    record("chunk", "done", key)
    return result


def __getattr__(name: str):
    """`Witnessed_<step>`: the registered step class, its `process` recorded. Made on first use,
    in any process (spawned workers unpickle stages by this name)."""
    if not name.startswith("Witnessed_"):
        raise AttributeError(name)
    step = name.removeprefix("Witnessed_")
    module, _, cls_name = _ORIGINAL_STEPS[step].partition(":")
    import importlib

    base = getattr(importlib.import_module(module), cls_name)
    cls = type(name, (base,), {"process": _witnessed_process, "__module__": __name__})
    cls.__qualname__ = name
    globals()[name] = cls
    return cls
