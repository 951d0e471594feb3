"""Our verdicts against `evalplus.evaluate`'s own, on the same data and sample files.

Small subsets of HumanEval+ v0.1.9 and MBPP+ v0.1.0 (cheap tasks: canonical times in
microseconds, so no verdict depends on machine load) with every kind of sample from
evaluation/mixed_samples.py, two samples for some tasks. evalplus.evaluate reads the subsets
through HUMANEVAL_OVERRIDE_PATH / MBPP_OVERRIDE_PATH and keeps its cache in the test's folder.
Both evalplus runs go in the background while we grade. The full-size comparison is
benchmarks/bench_eval.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from builder.evaluation.evalplus_data import SHARED_DATA, read_jsonl_bytes
from evaluation.mixed_samples import CHEAP_KINDS, make_solution, mixed, write_jsonl
from tests.helpers import run_cli
from tests.test_eval_grading import CHEAP_HUMANEVAL, CHEAP_MBPP, cache_dir, need_bwrap  # noqa: F401

HUMANEVAL_TASKS = [*CHEAP_HUMANEVAL, "HumanEval/3", "HumanEval/4", "HumanEval/5", "HumanEval/32",
                   "HumanEval/45", "HumanEval/52", "HumanEval/60", "HumanEval/147"]  # fmt: skip
MBPP_TASKS = [*CHEAP_MBPP, "Mbpp/58", "Mbpp/59", "Mbpp/77", "Mbpp/80", "Mbpp/86", "Mbpp/233",
              "Mbpp/276", "Mbpp/600", "Mbpp/762"]  # fmt: skip


def subset(name: str, task_ids: list[str], folder, second: tuple[str, str]) -> tuple:
    rows = [json.loads(line) for line in read_jsonl_bytes(SHARED_DATA / name).decode().splitlines()]
    rows = [r for r in rows if r["task_id"] in task_ids]
    path = folder / name.replace(".gz", "")
    write_jsonl(path, rows)
    samples = mixed(rows, CHEAP_KINDS)
    by_id = {r["task_id"]: r for r in rows}
    # second samples for two tasks; a hang costs EvalPlus the task's whole time budget (sum of
    # the per-input limits), so it goes to Mbpp/793: 3 base inputs, no plus inputs
    samples += [make_solution(by_id[task_id], kind) for task_id, kind in second]
    samples_path = folder / f"samples-{path.stem}.jsonl"
    write_jsonl(samples_path, samples)
    return path, samples_path


def start_evalplus(dataset: str, data, samples, folder) -> subprocess.Popen:
    env = {**os.environ, "XDG_CACHE_HOME": str(folder / "cache"), "TOKENIZERS_PARALLELISM": "false",
           "HUMANEVAL_OVERRIDE_PATH": str(data), "MBPP_OVERRIDE_PATH": str(data)}  # fmt: skip
    command = [
        sys.executable,
        "-m",
        "evalplus.evaluate",
        "--dataset",
        dataset,
        "--samples",
        str(samples),
    ]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )


def evalplus_verdicts(process: subprocess.Popen, samples) -> tuple[dict, list[str]]:
    out, _ = process.communicate(timeout=600)
    assert process.returncode == 0, out
    results = json.loads(samples.with_name(samples.stem + "_eval_results.json").read_text())["eval"]
    table = {}
    for task, entries in results.items():
        table[task] = [{"base": "pass" if e["base_status"] == "pass" else "fail",
                        "plus": "pass" if e["base_status"] == e["plus_status"] == "pass" else "fail"}
                       for e in entries]  # fmt: skip
    return table, re.findall(r"pass@1:\s+([0-9.]+)", out)


@pytest.mark.slow
def test_verdicts_and_scores_equal_evalplus_evaluate(tmp_path, cache_dir, capsys):  # noqa: F811
    need_bwrap()
    he_data, he_samples = subset(
        "HumanEvalPlus-v0.1.9.jsonl.gz",
        HUMANEVAL_TASKS,
        tmp_path,
        [("HumanEval/2", "wrong_plus"), ("HumanEval/7", "exit_early"), ("HumanEval/32", "correct")],
    )
    mb_data, mb_samples = subset(
        "MbppPlus-v0.1.0.jsonl.gz",
        MBPP_TASKS,
        tmp_path,
        [("Mbpp/793", "hang"), ("Mbpp/17", "wrong_all")],
    )
    runs = [start_evalplus("humaneval", he_data, he_samples, tmp_path / "he"),
            start_evalplus("mbpp", mb_data, mb_samples, tmp_path / "mb")]  # fmt: skip
    try:
        ours = {}
        for bench, data, samples in (
            ("humaneval+", he_data, he_samples),
            ("mbpp+", mb_data, mb_samples),
        ):
            capsys.readouterr()
            out = tmp_path / f"ours-{bench}.json"
            assert run_cli("eval", "--samples", samples, "--benchmark", bench, "--data-file", data,
                           "--results", out, "--cache-dir", cache_dir) == 0  # fmt: skip
            table = json.loads(out.read_text())
            ours[bench] = ({t: v if isinstance(v, list) else [v] for t, v in table.items()},
                           re.findall(r"pass@1:\s+([0-9.]+)", capsys.readouterr().out))  # fmt: skip
        theirs = {"humaneval+": evalplus_verdicts(runs[0], he_samples),
                  "mbpp+": evalplus_verdicts(runs[1], mb_samples)}  # fmt: skip
    finally:
        for run in runs:
            run.kill()
    for bench in ours:
        assert ours[bench][0] == theirs[bench][0], bench
        assert ours[bench][1] == theirs[bench][1] and len(ours[bench][1]) == 2, bench
    # the subsets are mixed: some samples pass, some fail only on plus, some fail base
    flat = [v for entries in ours["humaneval+"][0].values() for v in entries]
    assert {(v["base"], v["plus"]) for v in flat} == {
        ("pass", "pass"),
        ("pass", "fail"),
        ("fail", "fail"),
    }
