"""`decontaminate`: benchmark pieces, the trivial rule, planted contamination, a clean corpus,
pinned sources (local files and the Hub), and the stage end to end."""

import gzip
import json
import logging
import random
import re
import textwrap
from pathlib import Path

import pytest

from builder.data import BENCHMARKS_DIR
from builder.errors import StageError
from builder.pipeline.folder_input import python_corpus
from builder.stages.decontaminate.benchmarks import (
    BENCHMARKS,
    Piece,
    is_trivial,
    load_pieces,
    normalise,
    resolve,
)
from builder.stages.decontaminate.stage import DecontaminateParams, DecontaminateStage
from builder.stages.extract import extract_functions
from builder.store import open_store
from tests.helpers import TINY, export_rows, run_cli

DATA = BENCHMARKS_DIR
HUMANEVAL = DATA / "HumanEvalPlus-v0.1.9.jsonl.gz"
MBPP = DATA / "MbppPlus-v0.1.0.jsonl.gz"
SHIPPED = {"humaneval+": str(HUMANEVAL), "mbpp+": str(MBPP)}


def shipped_stage(**params) -> DecontaminateStage:
    return DecontaminateStage(
        DecontaminateParams(benchmarks=["humaneval+", "mbpp+"], sources=SHIPPED, **params)
    )


@pytest.fixture(scope="module")
def stage():
    return shipped_stage()


@pytest.fixture(scope="module")
def pieces():
    items = resolve(["humaneval+", "mbpp+"], SHIPPED, [])
    return [piece for item in items for piece in load_pieces(item)[1]]


def tasks(path: Path) -> list[dict]:
    return [json.loads(line) for line in gzip.open(path, "rt")]


def by_task(pieces, task_id, field):
    return [p.text for p in pieces if p.task_id == task_id and p.field == field]


def test_pieces_of_the_shipped_benchmarks(pieces):
    assert len({p.task_id for p in pieces if p.benchmark == "humaneval+"}) == 164
    assert len({p.task_id for p in pieces if p.benchmark == "mbpp+"}) == 399
    # HumanEval+: the entry point's signature and docstring (no imports), the docstring as
    # written between its quotes, the body.
    (prompt,) = by_task(pieces, "HumanEval/0", "prompt")
    assert prompt.startswith("def has_close_elements(") and "from typing" not in prompt
    (docstring,) = by_task(pieces, "HumanEval/0", "docstring")
    assert (
        docstring.strip().startswith("Check if in given list of numbers") and '"""' not in docstring
    )
    assert docstring in prompt
    # A prompt with a helper function first: the entry point's part, not the helper's.
    assert by_task(pieces, "HumanEval/10", "prompt")[0].startswith("def make_palindrome(")
    # MBPP+: the description without quotes; the solution's function, whole and body.
    assert [p.strip() for p in by_task(pieces, "Mbpp/3", "prompt")] == [
        "Write a python function to identify non-prime numbers."
    ]
    whole, body = by_task(pieces, "Mbpp/3", "canonical_solution")
    assert whole.startswith("def is_not_prime(n):") and "import math" not in whole
    assert body.startswith("if n == 1:") and body in whole


def test_trivial_rule():
    def solution(text):
        return Piece("b", "t", "canonical_solution", text)

    assert is_trivial(solution("\n    return x + y\n"))
    assert is_trivial(
        solution(
            "    # comment lines do not count\n    return [x for x in strings if substring in x]\n"
        )
    )
    assert not is_trivial(solution("    if n == 1: return 1\n    return 18 * 10 ** (n - 2)\n"))
    assert not is_trivial(solution("def add(x, y):\n    return x + y\n"))  # MBPP: def line counts
    assert is_trivial(Piece("b", "t", "prompt", "Add two numbers."))  # 15 characters
    assert not is_trivial(Piece("b", "t", "prompt", "Write a function to add two numbers."))
    assert normalise(" a +\tb\n  c ") == "a+bc"


def test_one_line_solutions_are_exempt_but_their_docstrings_are_not(stage):
    trivial = (
        'def add(a, b):\n    """Sum of two numbers."""\n    return x + y\n'  # HumanEval/53's body
    )
    copied = (
        'def add(x: int, y: int):\n    """Add two numbers x and y\n    >>> add(2, 3)\n    5\n'
        '    >>> add(5, 7)\n    12\n    """\n    return x + y\n'
    )
    result = stage.process([{"id": "1", "function": trivial}, {"id": "2", "function": copied}])
    assert [r["id"] for r in result.kept] == ["1"]
    assert "humaneval+ HumanEval/53 (docstring, prompt)" in result.dropped[0].detail


def perturb(snippet: str, rng: random.Random) -> list[str]:
    """Re-indented lines with the whitespace changed: run lengths, tabs, spaces added between
    tokens, trailing spaces, blank lines."""
    lines = []
    for line in textwrap.dedent(snippet).strip("\n").splitlines():
        line = re.sub(r"[ ]+", lambda m: rng.choice([" ", "  ", "\t", "   "]), line)
        line = re.sub(r"([(,=])", lambda m: m.group(1) + rng.choice(["", " "]), line)
        lines.append(rng.choice(["        ", "\t\t"]) + line + rng.choice(["", " ", "  "]))
        if rng.random() < 0.2:
            lines.append("")
    return lines


def planted(snippet: str, rng: random.Random, number: int) -> str:
    """A corpus function with the snippet inside, among code of its own."""
    return (
        "\n".join(
            [
                f"def process_records_{number}(records, limit=10):",
                '    """Process the records, up to a limit."""',
                "    results = []",
                "    for record in records[:limit]:",
                *perturb(snippet, rng),
                "        results.append(record)",
                "    return results",
            ]
        )
        + "\n"
    )


def planted_docstring(text: str, rng: random.Random, number: int) -> str:
    """A corpus function whose docstring is `text`, re-wrapped."""
    words = text.split(" ")
    wrapped, line = [], []
    for word in words:
        line.append(word)
        if rng.random() < 0.15:
            wrapped.append(" ".join(line))
            line = []
    wrapped.append(" ".join(line))
    body = "\n    ".join(wrapped)
    return f'def helper_{number}(items):\n    """{body}\n    """\n    return sorted(items)[:3]\n'


def expect_all_found(stage, planted_rows):
    """Every planted row dropped, naming its task and field."""
    result = stage.process(
        [{"id": str(i), "function": text} for i, (text, _, _) in enumerate(planted_rows)]
    )
    details = {int(d.row["id"]): d.detail for d in result.dropped}
    missed = [
        (task, field)
        for i, (_, task, field) in enumerate(planted_rows)
        if not re.search(rf"{re.escape(task)} \([^)]*{field}", details.get(i, ""))
    ]
    assert not missed, f"{len(missed)} planted pieces not found, e.g. {missed[:5]}"
    return result


def test_planted_humaneval_contamination_is_found_at_100_percent(stage):
    rng = random.Random(0)
    rows = []
    for number, task in enumerate(tasks(HUMANEVAL)):
        solution = Piece(
            "humaneval+", task["task_id"], "canonical_solution", task["canonical_solution"]
        )
        if not is_trivial(solution):
            rows.append(
                (
                    planted(task["canonical_solution"], rng, number),
                    task["task_id"],
                    "canonical_solution",
                )
            )
        rows.append((planted(task["prompt"], rng, number), task["task_id"], "prompt"))
    assert len(rows) == 164 + 127  # 37 one-line solutions are exempt
    result = expect_all_found(stage, rows)
    assert result.stats["matched:humaneval+"] == len(rows) and not result.kept


def test_planted_mbpp_contamination_is_found_at_100_percent(stage):
    rng = random.Random(1)
    rows = []
    for number, task in enumerate(tasks(MBPP)):
        rows.append(
            (
                planted(task["canonical_solution"], rng, number),
                task["task_id"],
                "canonical_solution",
            )
        )
        description = task["prompt"].strip().strip("'\"").strip()
        rows.append((planted_docstring(description, rng, number), task["task_id"], "prompt"))
    result = expect_all_found(stage, rows)
    assert result.stats["matched:mbpp+"] == 2 * 399 and not result.kept


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # invalid escapes in stdlib sources
def test_the_standard_library_is_clean(stage):
    functions = []
    for _, path, _ in python_corpus("stdlib").files:
        try:
            functions += extract_functions(path.read_text(encoding="utf-8"))
        except (SyntaxError, ValueError, UnicodeDecodeError):
            continue
    assert len(functions) > 2000
    # No stdlib function contains a benchmark piece (checked: none does, so none is excluded).
    result = stage.process(functions)
    assert [(d.row["name"], d.detail) for d in result.dropped] == []
    assert len(result.kept) == len(functions)


def publish_benchmark(hub, repo: str, files: dict[str, list[dict]], tmp_path: Path) -> str:
    local = {}
    for name, rows in files.items():
        path = tmp_path / repo.replace("/", "-") / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        local[name] = path
    hub.create_repo(repo, private=False)
    return hub.commit(repo, local, "benchmark")


def test_hub_benchmarks_pinned_by_commit(fake_hub, tmp_path, monkeypatch):
    """DS-1000 and LiveCodeBench shaped files, read through the real Hub client."""
    monkeypatch.setenv("HF_TOKEN", fake_hub.token)
    hub = open_store("hf")
    solution = "result = df.groupby('a')['b'].apply(list)\nresult = result.reset_index()\n"
    ds1000 = publish_benchmark(
        hub,
        "tester/ds1000-mini",
        {
            "test.jsonl": [
                {
                    "prompt": "Problem:\nHow do I gather every value of column b into one list per group of a?\n"
                    "A:\n<code>\nimport pandas as pd\n</code>\nBEGIN SOLUTION\n<code>",
                    "reference_code": solution,
                    "metadata": {"problem_id": 7, "library": "Pandas"},
                }
            ]
        },
        tmp_path,
    )
    question = "You are given an array nums of n integers. Return the number of pairs i < j with nums[i] == nums[j]."
    lcb = publish_benchmark(
        hub,
        "tester/lcb-mini",
        {"part1.jsonl": [{"question_id": "abc001_a", "question_content": question}]},
        tmp_path,
    )
    sources = {
        "ds1000": f"hub:tester/ds1000-mini@{ds1000}",
        "livecodebench": f"hub:tester/lcb-mini@{lcb}:part1.jsonl",
    }
    stage = DecontaminateStage(
        DecontaminateParams(benchmarks=["ds1000", "livecodebench"], sources=sources)
    )
    assert stage.fingerprint_extra() == {
        "benchmarks": {
            "ds1000": f"hub:tester/ds1000-mini@{ds1000}",
            "livecodebench": f"hub:tester/lcb-mini@{lcb}",
        }
    }
    rows = [
        {
            "id": "a",
            "function": f"def group(df):\n    '''Group.'''\n{textwrap.indent(solution, '    ')}    return result\n",
        },
        {"id": "b", "function": f'def count_pairs(nums):\n    """{question}"""\n    return 0\n'},
        {
            "id": "c",
            "function": "def clean(df):\n    '''Nothing here.'''\n    return df.dropna()\n",
        },
    ]
    result = stage.process(rows)
    assert [r["id"] for r in result.kept] == ["c"]
    assert [d.detail for d in result.dropped] == [
        "ds1000 DS-1000/7 (canonical_solution)",
        "livecodebench LiveCodeBench/abc001_a (prompt)",
    ]
    assert f"`hub:tester/ds1000-mini@{ds1000}` | 1 |" in stage.card_notes()

    # Missing: an error naming the benchmark, unless optional (then skipped, and the card says so).
    absent = {"ds1000": "hub:tester/no-such-dataset@" + "0" * 40}
    with pytest.raises(
        StageError, match="benchmark 'ds1000': cannot reach Hub dataset tester/no-such-dataset"
    ):
        DecontaminateStage(
            DecontaminateParams(benchmarks=["ds1000"], sources=absent, optional=[])
        ).fingerprint_extra()
    optional = DecontaminateStage(
        DecontaminateParams(benchmarks=["ds1000"], sources=absent, optional=["ds1000"])
    )
    assert optional.fingerprint_extra() == {"benchmarks": {"ds1000": "unavailable"}}
    assert optional.process(rows).dropped == []
    assert "not available, skipped (optional)" in optional.card_notes()
    # A branch is not a pin.
    with pytest.raises(StageError, match="a commit id, not a branch or tag"):
        resolve(["ds1000"], {"ds1000": "hub:tester/ds1000-mini@main"}, ["ds1000"])


def test_default_sources():
    assert BENCHMARKS["ds1000"].default_source.startswith("hub:xlangai/DS-1000@")
    assert BENCHMARKS["livecodebench"].default_source.startswith(
        "hub:livecodebench/code_generation_lite@"
    )
    # HumanEval+ and MBPP+: the shipped files; DS-1000 and LiveCodeBench where available.
    default = DecontaminateStage(DecontaminateParams())
    assert default.params.optional == ["ds1000", "livecodebench"]
    explicit = shipped_stage()
    pins = default.fingerprint_extra()["benchmarks"]
    assert {k: pins[k] for k in ("humaneval+", "mbpp+")} == explicit.fingerprint_extra()[
        "benchmarks"
    ]
    assert pins["ds1000"] == pins["livecodebench"] == "unavailable"  # not on the test Hub


def cli_args(tmp_path: Path, corpus: Path, *extra: str) -> list[str]:
    return [
        "--only",
        "extract,decontaminate",
        "--set",
        f"hub.store=local:{tmp_path}/s",
        "--set",
        f"work_dir={tmp_path}/w",
        "--set",
        f"stages.extract.source={corpus}",
        "--set",
        "stages.decontaminate.input=extract",
        "--set",
        "stages.decontaminate.benchmarks=[humaneval+, mbpp+]",
        *extra,
    ]


def sources_arg(humaneval: Path) -> list[str]:
    return ["--set", f"stages.decontaminate.sources={{humaneval+: {humaneval}, mbpp+: {MBPP}}}"]


def test_end_to_end_drops_and_reports(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    he0 = tasks(HUMANEVAL)[0]
    (corpus / "a.py").write_text(
        "def close_pairs(values, limit):\n    '''Whether two values are closer than limit.'''\n"
        + textwrap.indent(textwrap.dedent(he0["canonical_solution"]).strip() + "\n", "    ")
        + "\n\ndef mean(values):\n    '''Arithmetic mean.'''\n    return sum(values) / len(values)\n"
    )
    assert run_cli("run", TINY, *cli_args(tmp_path, corpus, *sources_arg(HUMANEVAL))) == 0
    store = open_store(f"local:{tmp_path}/s")
    manifest = json.loads(store.read_text("local/tiny-decontaminate", "main", "manifest.json"))
    assert manifest["rows_in"] == 2 and manifest["rows_out"] == 1
    assert manifest["drops"] == {"contaminated": 1}
    assert manifest["stats"] == {"matched:humaneval+": 1}
    assert set(manifest["settings"]["benchmarks"]) == {"humaneval+", "mbpp+"}
    rejected = export_rows(
        f"local:{tmp_path}/s", "local/tiny-decontaminate", tmp_path, split="rejected"
    )
    assert [(r["name"], r["drop_detail"]) for r in rejected] == [
        ("close_pairs", "humaneval+ HumanEval/0 (canonical_solution)")
    ]
    card = store.read_text("local/tiny-decontaminate", "main", "README.md")
    assert "HumanEvalPlus-v0.1.9.jsonl.gz sha256:" in card and "| matched:humaneval+ | 1 |" in card


@pytest.mark.parametrize(
    "problem, message",
    [
        ("missing", "benchmark 'humaneval+': file not found: {path}"),
        ("corrupt", "benchmark 'humaneval+': cannot read {path}:"),
    ],
)
def test_a_bad_benchmark_file_is_a_one_line_error_naming_it(tmp_path, caplog, problem, message):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.py").write_text("def f(x):\n    '''Identity.'''\n    return x\n")
    path = tmp_path / "HumanEvalPlus.jsonl.gz"
    if problem == "corrupt":
        path.write_bytes(b"not gzip at all")
    with caplog.at_level(logging.ERROR):
        assert run_cli("run", TINY, *cli_args(tmp_path, corpus, *sources_arg(path))) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and message.format(path=path) in errors[0] and "\n" not in errors[0]
    assert not open_store(f"local:{tmp_path}/s").repo_exists("local/tiny-decontaminate")


def test_unknown_benchmark_and_input_without_function_column(tmp_path, caplog):
    with caplog.at_level(logging.ERROR):
        assert run_cli("run", TINY, "--set", "stages.decontaminate.benchmarks=[humaneval]") == 2
    assert "stages.decontaminate.benchmarks: unknown benchmark 'humaneval'" in caplog.text
    import pyarrow as pa
    import pyarrow.parquet as pq

    store = open_store(f"local:{tmp_path}/s")
    store.create_repo("local/tiny-extract", private=True)
    table = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pylist([{"id": "1", "code": "def f(): pass"}]), table)
    store.commit(
        "local/tiny-extract", {"data/train-00000-of-00001.parquet": table}, "not functions"
    )
    caplog.clear()
    args = cli_args(tmp_path, tmp_path, *sources_arg(HUMANEVAL))
    args[1] = "decontaminate"
    with caplog.at_level(logging.ERROR):
        assert run_cli("run", TINY, *args) == 2
    assert "stage 'decontaminate' reads column 'function'" in caplog.text
    with pytest.raises(StageError, match="row 'x' has no function text"):
        shipped_stage().process([{"id": "x", "function": None}])
