"""builder.evaluation without a sandbox: data and samples loading, prompts, pass@k, reports,
model-index. Fast."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import pytest
import yaml

from builder.errors import BuilderError
from builder.evaluation import evalplus_grader as grader
from builder.evaluation.evalplus_data import SHARED_DATA, load_evalplus
from builder.evaluation.evalplus_grader import Check, Sample, SampleVerdict
from builder.evaluation.model_index import model_index_results, split_front_matter, update_card
from builder.evaluation.passk import pass_at_k, task_pass_at_k
from builder.evaluation.prompts import build_prompt, completion_code
from builder.evaluation.results import BenchmarkResult, format_scores, result_rows, verdicts_by_task
from builder.evaluation.samples import read_samples

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def humaneval():
    return load_evalplus("humaneval+")


@pytest.fixture(scope="module")
def mbpp():
    return load_evalplus("mbpp+")


def test_pinned_data_is_the_shipped_files_with_evalplus_hashes(humaneval, mbpp):
    # Inside the package, so that a user's clone (with no folder beside it) has them.
    assert SHARED_DATA.resolve() == (ROOT / "builder/data/benchmarks").resolve()
    assert len(humaneval.problems) == 164 and len(mbpp.problems) == 399
    assert humaneval.md5 == "84f4b93a1270b492e4c54d5212da7a5b"  # EvalPlus's id of v0.1.9
    assert (humaneval.version, mbpp.version) == ("v0.1.9", "v0.1.0")
    assert list(humaneval.problems)[:2] == ["HumanEval/0", "HumanEval/1"]


def test_data_file_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task_id": "X/1", "prompt": ""}\n')
    with pytest.raises(BuilderError, match="line 1: not an EvalPlus problem \\(no 'entry_point'"):
        load_evalplus("humaneval+", bad)
    with pytest.raises(BuilderError, match="unknown EvalPlus benchmark 'apps'"):
        load_evalplus("apps")
    gz = tmp_path / "x.jsonl.gz"
    gz.write_bytes(b"not gzip")
    with pytest.raises(BuilderError, match="not valid gzip"):
        load_evalplus("mbpp+", gz)


def test_samples_read_like_evalplus(humaneval, tmp_path, caplog):
    rows = [
        {"task_id": "HumanEval/0", "completion": "    return True\n"},
        {"task_id": "HumanEval/0", "solution": "def f(): pass\n", "completion": "ignored"},
        {"task_id": "HumanEval/999", "solution": "x"},  # not in the benchmark: skipped
        {"task_id": "HumanEval/1", "solution": "def g(): pass\n"},
    ]
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    samples = read_samples(path, humaneval)
    prompt = humaneval.problems["HumanEval/0"]["prompt"]
    assert samples == [
        Sample("HumanEval/0", 0, prompt + "    return True\n"),
        Sample("HumanEval/0", 1, "def f(): pass\n"),  # solution wins over completion
        Sample("HumanEval/1", 0, "def g(): pass\n"),
    ]
    assert "not in humaneval+" in caplog.text and "162 of the 164" in caplog.text
    path.write_text(json.dumps({"task_id": "HumanEval/0", "solution": ["a", "b"]}) + "\n")
    with pytest.raises(BuilderError, match="line 1: 'solution' must be a string"):
        read_samples(path, humaneval)
    path.write_text(json.dumps({"task_id": "HumanEval/0"}) + "\n")
    with pytest.raises(BuilderError, match="needs 'solution' or 'completion'"):
        read_samples(path, humaneval)


@pytest.mark.parametrize(
    ("n", "c", "k"), [(1, 0, 1), (1, 1, 1), (10, 3, 1), (10, 3, 5), (20, 0, 10), (200, 13, 100)]
)
def test_pass_at_k_matches_evalplus_and_the_closed_form(n, c, k):
    from evalplus.eval import estimate_pass_at_k

    ours = task_pass_at_k(n, c, k)
    assert ours == float(estimate_pass_at_k([n], [c], k)[0])
    assert ours == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k))


def test_pass_at_k_reports_only_k_every_task_reaches():
    scores = pass_at_k([(10, 2), (12, 12)])
    assert set(scores) == {"pass@1", "pass@10"}
    assert scores["pass@1"] == pytest.approx((0.2 + 1.0) / 2)
    assert pass_at_k([]) == {}


def test_humaneval_prompt_and_completion(humaneval):
    problem = humaneval.problems["HumanEval/0"]
    text = build_prompt("humaneval", problem)
    stripped = problem["prompt"].strip()
    assert text.startswith("You are an exceptionally intelligent coding assistant")
    assert (
        f"### Instruction\nWrite a Python function to solve the given task:\n```python\n{stripped}\n```"
        in text
    )
    assert text.endswith(f"### Response\n\n```python\n{stripped}")
    assert build_prompt("humaneval", problem, "plain").startswith("### Instruction\n")
    with pytest.raises(BuilderError, match="unknown prompt template 'x'"):
        build_prompt("humaneval", problem, "x")
    assert completion_code("\n    return 1\n```\nmore") == "\n    return 1\n"
    assert completion_code("no fence") == "no fence"


def test_mbpp_prompt_splits_description_and_assertion(mbpp):
    problem = mbpp.problems["Mbpp/2"]
    text = build_prompt("mbpp", problem)
    instruction = text.split("### Instruction\n")[1].split("\n\n### Response")[0]
    description, _, rest = instruction.partition(
        "\n\nYour code should pass the following assertion:\n"
    )
    assert description.endswith(".") and "assert" not in description
    assert rest == "```python\nassert similar_elements((3, 4, 5, 6),(5, 7, 4, 10)) == (4, 5)\n```"
    assert text.endswith("### Response\n\n```python")


def test_report_lines_are_checked_strictly():
    marker = "@evalplus-abc"
    stdout = "\n".join([
        "noise printed by someone",
        f'{marker} {{"k": 1, "p": "base", "s": "pass", "d": "111"}}',
        f'{marker} {{"k": 1, "p": "plus", "s": "fail", "d": "10"}}',
        f'{marker} {{"k": 7, "p": "base", "s": "pass", "d": "1"}}',  # not a sample of this program
        f'{marker} {{"k": 2, "p": "base", "s": "great", "d": "1"}}',  # unknown status
        f'{marker} {{"k": 2, "p": "base", "s": "pass", "d": "1x"}}',  # bad details
        '@evalplus-forged {"k": 2, "p": "base", "s": "pass", "d": "1"}',  # other marker
        f"{marker} not json",
    ])  # fmt: skip
    got = grader._parse_report(stdout, marker, {1, 2})
    assert got == ({1: {"base": Check("pass", "111"), "plus": Check("fail", "10")}}, False)
    assert grader._parse_report(f'{marker} {{"ready": true}}', marker, {1})[1] is True
    assert Check("fail", "10").failed_index() == 1 and Check("pass", "11").failed_index() is None


def test_time_bound_follows_evalplus_limits():
    options = grader.GradeOptions()
    # limits max(1, 4t) = [1, 2]; timeout min(60, 3) + 1, then join + kill slack
    assert grader.check_time_bound([0.01, 0.5], options) == pytest.approx(3 + 1 + 1 + 0.2)
    assert grader.check_time_bound([1.0] * 100, options) == pytest.approx(60 + 1 + 1 + 0.2)


def _verdict(task, index, base, plus, details="1"):
    sample = Sample(task, index, "code")
    return SampleVerdict(
        sample, Check(base, details), None if plus is None else Check(plus, details)
    )


def test_results_table_scores_and_rows(humaneval):
    verdicts = [
        _verdict("HumanEval/0", 0, "pass", "pass"),
        _verdict("HumanEval/1", 0, "pass", "fail", "10"),
        _verdict("HumanEval/2", 0, "timeout", None, ""),
        _verdict("HumanEval/3", 0, "fail", None, "110"),
    ]
    result = BenchmarkResult.from_grading(humaneval, verdicts, {})
    assert result.scores() == {"base": {"pass@1": 0.5}, "plus": {"pass@1": 0.25}}
    assert format_scores(result) == (
        "humaneval (base tests)\npass@1:\t0.500\nhumaneval+ (base + extra tests)\npass@1:\t0.250"
    )
    table = verdicts_by_task(verdicts)
    assert table["HumanEval/1"] == {"base": "pass", "plus": "fail"}
    assert table["HumanEval/2"] == {"base": "fail", "plus": "fail"}
    rows = result_rows(result, humaneval)
    assert rows[1]["plus_failed_input"] == json.dumps(
        humaneval.problems["HumanEval/1"]["plus_input"][1]
    )
    assert rows[3]["base_failed_input"] == json.dumps(
        humaneval.problems["HumanEval/3"]["base_input"][2]
    )
    assert rows[2]["plus_status"] is None and rows[2]["base_failed_input"] is None
    two = verdicts_by_task(
        [_verdict("HumanEval/0", 0, "pass", "pass"), _verdict("HumanEval/0", 1, "fail", None)]
    )
    assert two == {
        "HumanEval/0": [{"base": "pass", "plus": "pass"}, {"base": "fail", "plus": "fail"}]
    }


def test_model_index_results_and_card_merge():
    scores = {"humaneval+": {"base": {"pass@1": 0.726}, "plus": {"pass@1": 0.634}}}
    results = model_index_results(scores, {"humaneval+": "v0.1.9"}, "https://hub/x")
    assert [r["dataset"]["name"] for r in results] == ["HumanEval", "HumanEval+"]
    assert results[1]["metrics"] == [{"type": "pass@1", "value": 63.4, "name": "pass@1"}]
    assert results[1]["dataset"] == {
        "name": "HumanEval+",
        "type": "humanevalplus",
        "revision": "v0.1.9",
    }
    card = (
        "---\nlicense: apache-2.0\nmodel-index:\n- name: m\n  results:\n"
        "  - task: {type: text-generation}\n    dataset: {name: HumanEval+, type: humanevalplus}\n"
        "    metrics: [{type: pass@1, value: 10.0}]\n  - task: {type: text-generation}\n"
        "    dataset: {name: DS-1000, type: ds-1000}\n    metrics: [{type: pass@1, value: 40.0}]\n"
        "---\n# Model\n\nText.\n"
    )
    merged = update_card(card, "m", results)
    metadata, body = split_front_matter(merged)
    assert body == "# Model\n\nText.\n" and metadata["license"] == "apache-2.0"
    kept = metadata["model-index"][0]["results"]
    assert [r["dataset"]["type"] for r in kept] == ["ds-1000", "humaneval", "humanevalplus"]
    assert kept[2]["metrics"][0]["value"] == 63.4  # replaced, not duplicated
    fresh = yaml.safe_load(update_card("# No metadata\n", "m", results).split("---\n")[1])
    assert fresh["model-index"][0]["name"] == "m" and len(fresh["model-index"][0]["results"]) == 2


def test_gzip_and_plain_data_files_hash_alike(tmp_path):
    raw = gzip.decompress((SHARED_DATA / "HumanEvalPlus-v0.1.9.jsonl.gz").read_bytes())
    lines = raw.decode().splitlines(keepends=True)[:3]
    (tmp_path / "he.jsonl").write_text("".join(lines))
    (tmp_path / "he.jsonl.gz").write_bytes(gzip.compress("".join(lines).encode()))
    plain, packed = (
        load_evalplus("humaneval+", tmp_path / "he.jsonl"),
        load_evalplus("humaneval+", tmp_path / "he.jsonl.gz"),
    )
    assert plain.md5 == packed.md5 and list(plain.problems) == [
        "HumanEval/0",
        "HumanEval/1",
        "HumanEval/2",
    ]


def test_mbpp_release_prompt_with_its_assertion_inside():
    problem = {
        "task_id": "Mbpp/9",
        "prompt": '"""\nWrite a function to add\nassert add(1, 2) == 3\n"""\n',
    }
    text = build_prompt("mbpp", problem, "plain")
    assert (
        "### Instruction\nWrite a function to add.\n\nYour code should pass the following "
        "assertion:\n```python\nassert add(1, 2) == 3\n```\n\n### Response\n\n```python" == text
    )


def test_a_damaged_ground_truth_cache_entry_is_named_and_computed_again(humaneval, tmp_path, caplog):
    """A truncated pickle (written without fsync in a shared cache) once made the canonical
    solution of HumanEval/0 fail; a garbled JSON ended every run in a traceback naming no file."""
    import logging
    import pickle

    from builder.evaluation.groundtruth import ensure_groundtruth

    tasks = ["HumanEval/0", "HumanEval/2"]
    truth = ensure_groundtruth(humaneval, tasks, tmp_path)
    whole = truth.task_path("HumanEval/0").read_bytes()
    times = dict(truth.times)
    pkl = truth.task_path("HumanEval/0")
    pkl.write_bytes(whole[: len(whole) // 2])
    truth.task_path("HumanEval/2").with_suffix(".json").write_text('{"base_time": [0.1')
    with caplog.at_level(logging.WARNING):
        again = ensure_groundtruth(humaneval, tasks, tmp_path)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 2
    assert "HumanEval/0 is damaged (HumanEval_0.pkl does not match its hash)" in warned[0]
    assert "HumanEval/2 is damaged (HumanEval_2.json:" in warned[1]
    task = pickle.loads(pkl.read_bytes())  # whole again: the same expected outputs
    assert task["base"] == pickle.loads(whole)["base"]
    assert set(again.times) == set(times) and again.cost("HumanEval/2") > 0
