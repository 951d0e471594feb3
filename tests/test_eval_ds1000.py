"""DS-1000: prompts in the published completion mode, DS-1000's cleanup and harness program,
grading in the sandbox, `builder eval --samples` on a hand-made file in the release format."""

from __future__ import annotations

import json
import textwrap

import pyarrow.parquet as pq
import pytest

from builder.evaluation.ds1000 import completion_prompt, harness_program, load_ds1000, postprocess
from tests import witness
from tests.helpers import run_cli
from tests.test_eval_grading import need_bwrap

CONTEXT = textwrap.dedent('''
    import copy
    import numpy as np


    def generate_test_case(test_case_id):
        a = np.array([[1, 2], [3, 4]]) if test_case_id == 1 else np.arange(12).reshape(3, 4)
        return a, copy.deepcopy(a).sum(axis=0)


    exec_context = r"""
    import numpy as np
    a = test_input
    [insert]
    """


    def test_execution(solution: str):
        code = exec_context.replace("[insert]", solution)
        for i in range(2):
            test_input, expected_result = generate_test_case(i + 1)
            test_env = {"test_input": test_input}
            exec(code, test_env)
            np.testing.assert_array_equal(test_env["result"], expected_result)
    ''')
NO_LOOP = CONTEXT + textwrap.dedent("""

    def test_string(solution: str):
        assert "for" not in solution.split()
    """)
PROMPT = (
    "Problem:\nHow do I sum the columns of a 2-d numpy array?\n\nA:\n<code>\nimport numpy as np\n"
    "a = np.array([[1, 2], [3, 4]])\n</code>\nresult = ... # put solution in this variable\n"
    "BEGIN SOLUTION\n<code>\n"
)


def problem(pid: int, context: str, library: str = "Numpy") -> dict:
    metadata = {"problem_id": pid, "library_problem_id": pid, "library": library,
                "test_case_cnt": 2, "perturbation_type": "Origin", "perturbation_origin_id": pid}  # fmt: skip
    return {"prompt": PROMPT, "reference_code": "result = a.sum(axis=0)\n", "metadata": metadata,
            "code_context": context}  # fmt: skip


def test_completion_prompt_follows_the_published_rules():
    instruction, response = completion_prompt({"prompt": PROMPT})
    assert instruction == "How do I sum the columns of a 2-d numpy array?"
    assert response == (
        "```python\nimport numpy as np\na = np.array([[1, 2], [3, 4]])\n"
        "# result = ... # put solution in this variable\n# Solution\n"
    )
    plot = {"prompt": "import matplotlib.pyplot as plt\nx = [1, 2]\n\n# plot x\n# SOLUTION START\n"}
    instruction, response = completion_prompt(plot)
    assert instruction.startswith(
        "Write a solution to the following problem:\n```python\nimport matplotlib"
    )
    assert response.endswith("# plot x\n# Solution\n")
    function = {"prompt": "Problem:\nSum it.\nA:\n<code>\nimport numpy as np\ndef f(a):\n"
                "    # return the solution in this function\n    # result = f(a)\n    ### BEGIN SOLUTION"}  # fmt: skip
    instruction, response = completion_prompt(function)
    assert instruction == "Sum it."
    assert response == "```python\nimport numpy as np\ndef f(a):\n    # Solution\n"


def test_postprocess_and_program_are_ds1000s():
    assert postprocess("result = 1\n</code>\nEND SOLUTION\nmore") == "result = 1\n"
    assert postprocess("<code>result = 2\n```\ntext") == "result = 2\n"
    assert postprocess("```python\nresult = 3\nEND SOLUTION") == "\nresult = 3"
    program = harness_program(problem(0, NO_LOOP), "result = 1\n")
    assert program.endswith("\ncode = 'result = 1\\n'\ntest_execution(code)\ntest_string(code)\n")
    assert harness_program(problem(0, CONTEXT), "x").endswith("test_execution(code)\n\n")


def test_ds1000_samples_graded_in_the_sandbox(tmp_path, capsys):
    need_bwrap()
    data = tmp_path / "ds1000.jsonl"
    data.write_text(
        "".join(json.dumps(p) + "\n" for p in [problem(0, CONTEXT), problem(1, NO_LOOP, "Pandas")])
    )
    assert list(load_ds1000(data).problems) == ["DS-1000/0", "DS-1000/1"]
    samples = [
        {"task_id": 0, "completion": "result = a.sum(axis=0)\n</code>\nEND SOLUTION"},  # pass
        {"task_id": "DS-1000/0", "completion": "result = a.sum(axis=1)"},  # wrong axis
        {"task_id": "1", "completion": "result = a.sum(0)\n```"},  # pass
        {
            "task_id": 1,
            "completion": "result = np.array([sum(c) for c in a.T])",
        },  # test_string fails
    ]
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in samples))
    out = tmp_path / "verdicts.json"
    capsys.readouterr()
    assert (
        run_cli(
            "eval",
            "--samples",
            path,
            "--benchmark",
            "ds-1000",
            "--data-file",
            data,
            "--results",
            out,
        )
        == 0
    )
    assert json.loads(out.read_text()) == {
        "DS-1000/0": ["pass", "fail"],
        "DS-1000/1": ["pass", "fail"],
    }
    printed = capsys.readouterr().out
    assert "ds-1000 score: pass@1 0.500" in printed and "ds-1000 Pandas: pass@1 0.500" in printed


def test_ds1000_needs_its_data_file(caplog):
    assert run_cli("eval", "--samples", "x.jsonl", "--benchmark", "ds-1000") == 2
    assert "ds-1000 needs --data-file" in caplog.text


@pytest.mark.parametrize(
    "bad", ['{"prompt": "p"}', '{"prompt": "p", "code_context": "", "metadata": {}}']
)
def test_ds1000_rows_are_checked(bad, tmp_path, caplog):
    data = tmp_path / "bad.jsonl"
    data.write_text(bad + "\n")
    with pytest.raises(Exception, match="not a DS-1000 problem"):
        load_ds1000(data)


def test_eval_model_on_ds1000(tmp_path, capsys):
    """`builder eval --model` on two DS-1000 problems, with the witness engine answering one
    right and one wrong: the right one must pass and the wrong one fail (a grader that fails,
    or passes, everything would not give these verdicts)."""
    need_bwrap()
    data = tmp_path / "ds1000.jsonl"
    other = {**problem(1, CONTEXT), "prompt": PROMPT.replace("sum the columns", "add up each column")}
    data.write_text(json.dumps(problem(0, CONTEXT)) + "\n" + json.dumps(other) + "\n")
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    answers = [["sum the columns", "result = a.sum(axis=0)\n```"],  # right
               ["add up each column", "result = a.sum(axis=1)\n```"]]  # wrong axis
    store = f"local:{tmp_path / 'store'}"
    with witness.installed(tmp_path / "witness.jsonl", answers=answers) as record:
        assert run_cli("eval", "--model", model, "--engine", "witness", "--benchmarks", "ds-1000",
                       "--data-file", data, "--store", store, "--repo", "local/ds-eval",
                       "--cache-dir", tmp_path / "cache") == 0  # fmt: skip
    assert "ds-1000 score: pass@1 0.500" in capsys.readouterr().out
    assert len(witness.keys(record, "sample")) == 2
    from builder.store import open_store

    local = open_store(store).fetch("local/ds-eval", "main", ["data/ds_1000-00000-of-00001.parquet"])
    rows = pq.read_table(local["data/ds_1000-00000-of-00001.parquet"]).to_pylist()
    assert {r["task_id"]: (r["status"], r["code"]) for r in rows} == {
        "DS-1000/0": ("pass", "result = a.sum(axis=0)"),
        "DS-1000/1": ("fail", "result = a.sum(axis=1)"),
    }
