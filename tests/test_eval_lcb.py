"""LiveCodeBench: release files and date windows, test decoding (and refusing pickled objects),
prompts, and grading in the sandbox with LiveCodeBench's rules on hand-made problems."""

from __future__ import annotations

import base64
import json
import pickle
import zlib

import pytest

from builder.errors import BuilderError
from builder.evaluation.livecodebench import instruction, load_livecodebench
from tests.helpers import run_cli
from tests.test_eval_grading import need_bwrap


def packed(tests: list[dict]) -> str:
    """How the lite release stores private tests: base64(zlib(pickle(json string)))."""
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(tests)))).decode()


def problem(
    qid: str, date: str, tests: list[dict], starter: str = "", func: str | None = None
) -> dict:
    return {
        "question_title": qid, "question_content": f"Solve {qid}.", "platform": "atcoder",
        "question_id": qid, "contest_id": "c1", "contest_date": f"{date}T00:00:00",
        "starter_code": starter, "difficulty": "easy", "public_test_cases": json.dumps(tests[:1]),
        "private_test_cases": packed(tests[1:]),
        "metadata": json.dumps({"func_name": func} if func else {}),
    }  # fmt: skip


SUM = problem("abc1_a", "2023-06-01", [
    {"input": "1 2\n", "output": "3\n", "testtype": "stdin"},
    {"input": "10 -4\n", "output": "6\n", "testtype": "stdin"},
    {"input": "0 0\n", "output": "0\n", "testtype": "stdin"},
])  # fmt: skip
TWO_SUM = problem("two-sum", "2024-02-01", [
    {"input": "[2,7,11,15]\n9", "output": "[0, 1]", "testtype": "functional"},
    {"input": "[3,2,4]\n6", "output": "[1, 2]", "testtype": "functional"},
], "class Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n        ", "twoSum")  # fmt: skip
HALF = problem("abc2_b", "2024-05-01", [{"input": "3\n", "output": "1.5\n", "testtype": "stdin"}])

STDIN_SAMPLES = {  # code -> passes?
    "a, b = map(int, input().split())\nprint(a + b)\n": True,
    "import sys\na, b = map(int, sys.stdin.readline().split())\nprint(a + b)\n": True,
    "def main():\n    print(sum(map(int, input().split())))\n\nif __name__ == '__main__':\n    main()\n": True,
    "a, b = map(int, input().split())\nprint(a + b)\nexit()\n": True,  # SystemExit ends a run
    "a, b = map(int, input().split())\nprint(a + b)\nquit()\n": False,  # quit is disabled
    "a, b = map(int, input().split())\nprint(a - b)\n": False,
    # the header's `from builtins import *` binds the real open(), which the patch never reaches
    "print(sum(map(int, open(0).read().split())))\n": False,
    "import sys\nprint(sum(map(int, sys.stdin.buffer.read().split())))\n": False,  # no buffer there
    "while True:\n    pass\n": False,  # time limit
}
TWO_SUM_SAMPLES = {
    "class Solution:\n    def twoSum(self, nums, target):\n        seen = {}\n        for i, x in enumerate(nums):\n"
    "            if target - x in seen:\n                return (seen[target - x], i)\n            seen[x] = i\n": True,
    "class Solution:\n    def twoSum(self, nums, target):\n        return [0, 1]\n": False,
    "class Solution:\n    def other(self):\n        return 1\n": False,
}  # fmt: skip


def write_release(folder, *files):
    folder.mkdir()
    for name, rows in files:
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_releases_windows_and_decoding(tmp_path):
    folder = write_release(
        tmp_path / "lcb", ("test.jsonl", [SUM, TWO_SUM]), ("test2.jsonl", [HALF])
    )
    assert list(load_livecodebench(folder, "release_v1").problems) == ["LCB/abc1_a", "LCB/two-sum"]
    data = load_livecodebench(folder, "release_v2", start="2024-01-01")
    assert list(data.problems) == ["LCB/two-sum", "LCB/abc2_b"] and data.version.startswith(
        "release_v2 2024-01-01"
    )
    assert list(load_livecodebench(folder, end="2023-12-31").problems) == ["LCB/abc1_a"]
    tests = data.problems["LCB/two-sum"]["private_test_cases"]
    assert tests == [{"input": "[3,2,4]\n6", "output": "[1, 2]", "testtype": "functional"}]
    evil = dict(
        SUM,
        private_test_cases=base64.b64encode(
            zlib.compress(pickle.dumps(BuilderError("x")))
        ).decode(),
    )
    (tmp_path / "evil.jsonl").write_text(json.dumps(evil) + "\n")
    with pytest.raises(
        BuilderError, match="abc1_a: unreadable tests .*refused builder.errors.BuilderError"
    ):
        load_livecodebench(tmp_path / "evil.jsonl")
    with pytest.raises(BuilderError, match="no LiveCodeBench problem"):
        load_livecodebench(folder, start="2030-01-01")


def test_prompt_uses_livecodebench_question_format(tmp_path):
    data = load_livecodebench(write_release(tmp_path / "lcb", ("test.jsonl", [SUM, TWO_SUM])))
    stdin_text = instruction(data.problems["LCB/abc1_a"])
    assert stdin_text.startswith(
        "### Question:\nSolve abc1_a.\n\n### Format: Read the inputs from stdin"
    )
    assert stdin_text.endswith(
        "```python\n# YOUR CODE HERE\n```\n\n### Answer: (use the provided format with backticks)"
    )
    assert "```python\nclass Solution:\n    def twoSum" in instruction(data.problems["LCB/two-sum"])


@pytest.mark.slow
def test_samples_graded_with_livecodebench_rules(tmp_path, capsys):
    need_bwrap()
    folder = write_release(tmp_path / "lcb", ("test.jsonl", [SUM, TWO_SUM, HALF]))
    rows = [{"task_id": "abc1_a", "code": code} for code in STDIN_SAMPLES]
    rows += [{"task_id": "LCB/two-sum", "completion": code} for code in TWO_SUM_SAMPLES]
    rows += [{"task_id": "abc2_b", "code": "print(3 / 2)\n"}, {"task_id": "abc2_b", "code": "print('1.50')\n"},
             {"task_id": "abc2_b", "code": "print(1.5, 0)\n"}]  # fmt: skip
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "verdicts.json"
    assert run_cli("eval", "--samples", samples, "--benchmark", "livecodebench", "--data-file", folder,
                   "--results", out) == 0  # fmt: skip
    table = json.loads(out.read_text())
    expected = lambda samples: ["pass" if ok else "fail" for ok in samples.values()]
    assert table["LCB/abc1_a"] == expected(STDIN_SAMPLES)
    assert table["LCB/two-sum"] == expected(TWO_SUM_SAMPLES)
    assert table["LCB/abc2_b"] == ["pass", "pass", "fail"]  # compared as Decimals, not text
    assert "livecodebench score: pass@1" in capsys.readouterr().out
