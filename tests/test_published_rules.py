"""Our rules in their published forms, checked against the published pipeline's own tools.

The oracle is `benchmarks/reference_seeds.py`: the published scripts' behaviour rebuilt on
tree-sitter (their parser). With `extract.docstring_quotes: double` and
`extract.trailing_comments: true` our `ast`-based extraction must find the functions
tree-sitter finds, with the same text; with `filter.nested_returns: true` our return rule must
agree with its return test. On hand-made edge cases and on real files of this Python.
"""

import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from builder.stages.extract import extract_functions
from builder.stages.seeds import function_rules as rules
from tests.helpers import ROOT, smallest_setting

pytest.importorskip("tree_sitter")
pytest.importorskip("tree_sitter_python")
sys.path.insert(0, str(ROOT / "benchmarks"))
import reference_seeds as ref  # noqa: E402

EDGE_CASES = textwrap.dedent('''
    import functools

    @functools.cache
    @other(1)
    def decorated(x):
        """Decorators are not part of the published text."""
        return x


    async def coroutine(x):
        """An async def is a function_definition too."""
        return await x
        # a comment at the body's indentation belongs to it


    def raw(x):
        r"""A raw docstring: not matched by the published query."""
        return x


    def single(x):
        \'\'\'Single quotes: not matched either.\'\'\'
        return x


    def empty(x):
        """"""
        return x


    def nested(x):
        """Returns only from the nested function."""
        def inner():
            return x
            # deeper comment
        inner()
      # indented less than the body: ends the function
        # so this one is outside too


    class Holder:
        def method(self):
            """Methods are not top-level."""
            return 1


    def one_line(x): """Doc on the def line."""; return x
        # not part of a one-line function, whatever its indentation


    def last(x):
        """At the end of the file."""
        if x:
            return x

        # after a blank line, still inside
''')


def ours_published(content: str) -> dict[int, str]:
    """def line -> function text without decorators, from our extraction in published mode."""
    found = {}
    for f in extract_functions(content, "double", trailing_comments=True):
        own = rules.without_decorators(f["function"])
        decorators = len(f["function"].splitlines()) - len(own.splitlines())
        found[f["lineno"] + decorators] = own.rstrip()
    return found


def theirs(content: str) -> dict[int, str]:
    return {f.line: f.text.rstrip() for f in ref.Extractor().functions("x.py", content.encode())}


def test_published_mode_extracts_what_tree_sitter_extracts_on_edge_cases():
    expected = theirs(EDGE_CASES)
    assert ours_published(EDGE_CASES) == expected
    names = [text.split("(")[0].split()[-1] for text in expected.values()]
    assert names == ["decorated", "coroutine", "nested", "one_line", "last"]
    # Our default finds the raw, single-quoted and empty docstrings too, without the comments.
    ours = [f["name"] for f in extract_functions(EDGE_CASES)]
    assert ours == ["decorated", "coroutine", "raw", "single", "empty", "nested", "one_line",
                    "last"]  # fmt: skip


REAL_FILES = ["textwrap.py", "enum.py", "ast.py", "difflib.py", "gzip.py", "functools.py",
              "inspect.py", "platform.py", "shutil.py", "tokenize.py"]  # fmt: skip


@pytest.mark.parametrize("name", REAL_FILES)
def test_published_mode_extracts_what_tree_sitter_extracts_on_real_files(name):
    content = (Path(sysconfig.get_paths()["stdlib"]) / name).read_text(encoding="utf-8")
    expected = theirs(content)
    assert expected, "a file with documented top-level functions"
    assert ours_published(content) == expected


@pytest.mark.parametrize("name", REAL_FILES)
def test_nested_returns_agrees_with_the_published_return_test(name):
    content = (Path(sysconfig.get_paths()["stdlib"]) / name).read_text(encoding="utf-8")
    extractor = ref.Extractor()
    for f in extract_functions(content):
        node = rules.parse_function(f["function"])
        published = rules.no_return_value(node, nested_count=True) is None
        assert published == extractor.has_return_value(f["function"]), f["name"]


@pytest.mark.slow
def test_the_side_by_side_benchmark_runs_at_its_smallest_setting(tmp_path):
    """`bench_seeds_reference.py` end to end on a few dozen functions of the standard library:
    both sides run, and every difference falls in a named class."""
    script = ROOT / "benchmarks" / "bench_seeds_reference.py"
    done = subprocess.run(
        [sys.executable, str(script), *smallest_setting(script, tmp=tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert out.count("  seeds: reference ") == 2  # our default rules, then the published ones
    assert "UNNAMED" not in out
    assert "docstring_quotes: " in out and "report_missing_imports: " in out
