"""`kill -9` in the middle of `extract`, then the same command again: the rows equal an
uninterrupted run's, none lost or duplicated, and finished chunks are not redone.

What was processed is read from an independent witness (`tests/witness.py`: the stage wrapped,
each chunk written down as it starts and ends, in a file that survives the kill), not from the
runner's own log. The kill is synchronised on that file: the run's two workers stop before
their next chunk once some chunks are done, and the test kills them there."""

import sysconfig
from collections import Counter
from pathlib import Path

from builder.store import open_store
from tests import witness
from tests.helpers import TINY, export_rows, recipe_settings, run_cli

DONE_BEFORE_KILL = 2  # chunks (of 200 files) finished before the workers stop


def corpus_dirs() -> str:
    """Parts of the standard library: about 1,300 files, 7 chunks."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    names = ("test", "idlelib", "lib2to3", "distutils", "unittest", "tkinter", "asyncio", "email")
    return ",".join(str(stdlib / n) for n in names if (stdlib / n).is_dir())


def settings(name, store_uri, work_dir, source):
    return recipe_settings(
        work_dir.parent, name, store_uri, work_dir=work_dir, stages__extract__source=source,
        stages__extract__num_proc=2,
    )


def test_kill_9_mid_extract_then_rerun_equals_an_uninterrupted_run(store_uri, tmp_path):
    source = corpus_dirs()
    name = f"resume{store_uri[:2]}"
    work = tmp_path / "work"
    args = settings(name, store_uri, work, source)
    first, second, clean_witness = (tmp_path / f"{n}.jsonl" for n in ("first", "second", "clean"))
    # Killed once both workers stopped before their next chunk: every chunk they finished is saved.
    witness.kill_9_when_paused(first, ["run", TINY, "--only", "extract", *args],
                               f"chunk:{DONE_BEFORE_KILL}", "both workers to pause", processes=2,
                               steps=["extract"])  # fmt: skip
    done_before = witness.counted(first, "chunk", "done")
    assert witness.counted(first, "chunk", "start") == done_before  # nothing was in flight
    assert sum(done_before.values()) >= DONE_BEFORE_KILL
    assert len(list(work.glob("*/*/chunks/*.json"))) == len(done_before)
    repo = f"tester/{name}-extract"
    assert not open_store(store_uri).repo_exists(repo)  # nothing half-published

    with witness.installed(second, steps=["extract"]):
        assert run_cli("run", TINY, "--only", "extract", *args) == 0
    resumed = export_rows(store_uri, repo, tmp_path / "a")

    clean_store = f"local:{tmp_path / 'clean-store'}"
    with witness.installed(clean_witness, steps=["extract"]):
        assert run_cli("run", TINY, "--only", "extract",
                       *settings(name + "clean", clean_store, tmp_path / "w2", source)) == 0  # fmt: skip
    clean = export_rows(clean_store, f"tester/{name}clean-extract", tmp_path / "b")

    every_chunk = witness.counted(clean_witness, "chunk")
    assert len(every_chunk) >= DONE_BEFORE_KILL + 3 and set(every_chunk.values()) == {1}
    redone = witness.counted(second, "chunk")
    # The rerun processed exactly the chunks not finished before the kill, each once.
    assert redone == Counter({k: 1 for k in every_chunk if k not in done_before})
    assert done_before + redone == every_chunk  # every chunk processed once over both runs

    assert len(clean) > 500
    assert [r["content_hash"] for r in resumed] == [r["content_hash"] for r in clean]
    assert resumed == clean
    assert len({r["content_hash"] for r in resumed}) == len(resumed)
    assert not any(work.glob("*/*"))  # the checkpoint is removed once published
