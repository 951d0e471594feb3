"""`imports`: the imports a function needs, prepended; a runaway function is killed and dropped."""

import pytest

from builder.stages.seeds.import_inference import (
    ImportInferrer,
    Inferred,
    NotInferred,
    infer_imports,
)
from builder.stages.seeds.imports import ImportsParams, ImportsStage
from tests.helpers import dedent

fn = dedent  # a function's source as the stage reads it

def test_modules_typing_names_and_common_names_are_imported():
    function = fn('''
        def parse(text: str) -> Optional[Path]:
            """Find a path in the text."""
            found = re.search(r"/\\S+", text)
            return Path(found.group(0)) if found else None
        ''')
    inferred = infer_imports(function)
    assert sorted(inferred.imports) == ["from pathlib import Path", "from typing import Optional",
                                        "import re"]
    assert inferred.code == "\n".join(inferred.imports) + "\n\n\n" + function


def test_a_function_needing_nothing_is_unchanged():
    function = fn('''
        def double(x):
            """Twice x."""
            return 2 * x
        ''')
    assert infer_imports(function) == Inferred([], function)


def test_names_it_cannot_place_stay_undefined():
    # An alias (np) and a global of the original module are left for typecheck to catch.
    function = fn('''
        def scaled(x):
            """Scale by the module's factor."""
            return np.asarray(x) * FACTOR
        ''')
    assert infer_imports(function).imports == []


def test_imports_inside_the_function_stay_where_they_are():
    # Moving `import json` out of the `try` would leave an empty block: a syntax error.
    function = fn('''
        def load(text):
            """Parse JSON if the module is there."""
            try:
                import json
            except ImportError:
                return None
            return json.loads(text) or math.inf
        ''')
    inferred = infer_imports(function)
    assert inferred.imports == ["import math"]
    assert inferred.code.endswith(function)
    compile(inferred.code, "<code>", "exec")


def test_the_child_does_not_see_the_callers_directory_or_pythonpath(tmp_path, monkeypatch):
    (tmp_path / "localhelpers.py").write_text("def helper(): return 1\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.syspath_prepend(str(tmp_path))
    function = 'def f(x):\n    """Doc."""\n    return localhelpers.helper() + x\n'
    assert infer_imports(function).imports == ["import localhelpers"]  # in this process: found
    inferrer = ImportInferrer(timeout_s=30)
    try:
        assert inferrer.infer(function) == Inferred([], function)  # in the child: not offered
    finally:
        inferrer.close()


SLOW = "def f(x):\n" + "".join(f"    x += name_{i}\n" for i in range(100_000)) + "    return x\n"


@pytest.mark.slow
def test_a_function_over_the_timeout_is_killed_and_the_next_one_still_runs():
    # Margins that no machine load bridges: the quick function takes about 0.3 s, the slow one
    # (100,000 names) about 50 s, the timeout is 5 s.
    quick = 'def g(x):\n    """Doc."""\n    return re.escape(x)\n'
    inferrer = ImportInferrer(timeout_s=5)
    try:
        assert inferrer.infer(quick).imports == ["import re"]
        child = inferrer._proc
        assert inferrer.infer(SLOW) == NotInferred("import_timeout", "took more than 5s")
        assert child.poll() is not None  # really stopped, not left running in the background
        assert inferrer.infer(quick).imports == ["import re"]  # on a fresh child
        assert inferrer._proc is not child
    finally:
        inferrer.close()


def test_an_error_of_the_tool_drops_only_that_function():
    # autoimport asks importlib for a module named `__main__`, which raises in a `-c` process.
    rows = [{"id": "main", "function": 'def f(x):\n    """Doc."""\n    return __main__.x\n'},
            {"id": "ok", "function": 'def g(x):\n    """Doc."""\n    return x\n'}]
    stage = ImportsStage(ImportsParams(timeout_s=30))
    try:
        result = stage.process(rows)
    finally:
        stage.close()
    assert [(d.row["id"], d.reason, d.detail) for d in result.dropped] == [
        ("main", "import_failed", "ValueError: __main__.__spec__ is None")]
    assert [r["id"] for r in result.kept] == ["ok"]


def test_the_stage_adds_code_and_imports_and_keeps_function():
    rows = [
        {"id": "a", "function": 'def f(x):\n    """Doc."""\n    return math.floor(x)\n'},
        {"id": "b", "function": 'def g(x):\n    """Doc."""\n    return x\n'},
    ]
    stage = ImportsStage(ImportsParams(timeout_s=30))
    try:
        result = stage.process(rows)
    finally:
        stage.close()
    assert not result.dropped
    a, b = result.kept
    assert a == {**rows[0], "imports": ["import math"], "code": "import math\n\n\n" + rows[0]["function"]}
    assert b == {**rows[1], "imports": [], "code": rows[1]["function"]}
    assert result.stats == {"functions_given_imports": 1}


@pytest.mark.slow
def test_the_stage_drops_a_timeout_with_its_reason():
    rows = [{"id": "slow", "function": SLOW}, {"id": "ok", "function": "def g(x):\n    return x\n"}]
    stage = ImportsStage(ImportsParams(timeout_s=5))  # margins as in the test above
    try:
        result = stage.process(rows)
    finally:
        stage.close()
    assert [(d.row["id"], d.reason) for d in result.dropped] == [("slow", "import_timeout")]
    assert [r["id"] for r in result.kept] == ["ok"]


def test_code_is_the_function_without_its_decorators_and_function_keeps_them():
    function = fn('''
        @pytest.fixture(scope="module")
        @functools.cache
        def table(size):
            """A table of squares."""
            return [math.isqrt(i) for i in range(size)]
    ''')
    stage = ImportsStage(ImportsParams(timeout_s=30))
    try:
        result = stage.process([{"id": "t", "function": function}])
    finally:
        stage.close()
    [row] = result.kept
    own = function.split("\n", 2)[2]  # from `def` on
    assert row["function"] == function
    assert row["imports"] == ["import math"]  # not `functools`, `pytest`: the decorators' names
    assert row["code"] == "import math\n\n\n" + own
    assert result.stats["decorators_left_out_of_code"] == 1
