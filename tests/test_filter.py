"""`filter`: each rule keeps what it should and drops what it should, under its own reason."""

import textwrap

import pytest

from builder.stages.seeds.filter import FilterParams, FilterStage


def verdict(source: str, **params) -> tuple[str, str] | None:
    return FilterStage(FilterParams(**params)).first_failure(textwrap.dedent(source).lstrip())


def reason(source: str, **params) -> str | None:
    failure = verdict(source, **params)
    return failure and failure[0]


KEEP = '''
    def scale(values, factor=2):
        """Multiply every value."""
        return [v * factor for v in values]
    '''


def test_a_plain_function_passes_every_rule():
    assert verdict(KEEP) is None


@pytest.mark.parametrize("source, expected", [
    ('def f(x):\n    """Doc."""\n    print(x)\n', "no `return` statement"),
    ('def f(x):\n    """Doc."""\n    if x:\n        return\n    print(x)\n', "only bare `return`"),
    # A return in a nested def or lambda returns from something else.
    ('def f(x):\n    """Doc."""\n    def g():\n        return x\n    g()\n', "no `return` statement"),
    ('def f(x):\n    """Doc."""\n    class C:\n        def m(self):\n            return x\n    C()\n',
     "no `return` statement"),
])
def test_a_function_that_returns_no_value_is_dropped(source, expected):
    assert verdict(source) == ("no_return_value", expected)


@pytest.mark.parametrize("source", [
    'def f(x):\n    """Doc."""\n    return None\n',  # an explicit value, even None
    'async def f(x):\n    """Doc."""\n    return await x\n',
    'def f(x):\n    """Doc."""\n    def g():\n        return 1\n    return g\n',
])
def test_a_return_with_a_value_in_the_function_itself_passes(source):
    assert verdict(source) is None


@pytest.mark.parametrize("signature, kept", [
    ("()", False), ("(x)", True), ("(*args)", True), ("(**kwargs)", True),
    ("(*, key)", True), ("(x, /)", True),
])
def test_a_function_needs_an_argument_of_any_kind(signature, kept):
    source = f'def f{signature}:\n    """Doc."""\n    return 1\n'
    assert (reason(source) is None) == kept
    if not kept:
        assert verdict(source) == ("no_arguments", "0 arguments, at least 1 wanted")


def test_min_args_is_a_recipe_key():
    two = 'def f(a, b):\n    """Doc."""\n    return a\n'
    assert reason(two, min_args=3) == "no_arguments"
    assert reason(two, min_args=2) is None


def test_too_long_counts_lines_against_max_lines():
    body = "".join(f"    x{i} = {i}\n" for i in range(146))
    source = 'def f(x):\n    """Doc."""\n' + body + "    return x\n"  # 149 lines
    assert reason(source) is None
    assert verdict(source, max_lines=148) == ("too_long", "149 lines, at most 148 allowed")
    longer = 'def f(x):\n    """Doc."""\n' + body * 2 + "    return x\n"
    assert reason(longer) == "too_long"


@pytest.mark.parametrize("text, expected", [
    ("# TODO: handle negatives", ("bad_word", "'TODO' on line 3")),
    ("# Fixme later", ("bad_word", "'Fixme' on line 3")),
    ("# works around a bug in parsing", ("bad_word", "'bug' on line 3")),
    ("# debug output is verbose", None),  # whole words only: debug, bugs, todos pass
    ("# fixed two bugs and the todos", None),
])
def test_bad_words_match_whole_words_anywhere_in_the_text(text, expected):
    source = f'def f(x):\n    """Doc."""\n    {text}\n    return x\n'
    assert verdict(source) == expected


def test_bad_words_as_substrings_and_as_a_recipe_key():
    source = 'def f(x):\n    """Print debug output."""\n    return x\n'
    assert verdict(source, bad_word_substrings=True) == ("bad_word", "'bug' on line 2")
    assert reason('def f(x):\n    """Some HACK."""\n    return x\n', bad_words=["hack"]) == "bad_word"
    assert reason('def f(x):\n    """A TODO."""\n    return x\n', bad_words=[]) is None


@pytest.mark.parametrize("line, expected", [
    ("import os", "import os (line 3)"),
    ("import os.path", "import os.path (line 3)"),
    ("from os import path", "from os import ... (line 3)"),
    ("from os.path import join", "from os.path import ... (line 3)"),
    ("import numpy, subprocess as sp", "import subprocess (line 3)"),
    ("x = sys.argv", "uses `sys` without importing it, so it would be imported"),
])
def test_bad_imports_anywhere_inside_the_function(line, expected):
    source = f'def f(x):\n    """Doc."""\n    {line}\n    return x\n'
    assert verdict(source) == ("bad_import", expected)


@pytest.mark.parametrize("line", [
    "import osgeo",  # a different module that starts with the same letters
    "from .os import path",  # relative: the package's own module
    "import json",
    "os = make_os()\n    os.run()",  # a local name, not the module
])
def test_other_imports_and_local_names_pass(line):
    source = f'def f(x):\n    """Doc."""\n    {line}\n    return x\n'
    assert verdict(source) is None


def test_bad_imports_is_a_recipe_key():
    source = 'def f(x):\n    """Doc."""\n    import json\n    return json.dumps(x)\n'
    assert reason(source, bad_imports=["json"]) == "bad_import"


def test_the_first_failing_rule_is_the_reason():
    # Fails every rule: no argument, no return value, a bad word and a bad import.
    source = 'def f():\n    """TODO."""\n    import os\n    print(os.sep)\n'
    assert reason(source) == "no_return_value"
    assert reason(source.replace("print(", "return (")) == "no_arguments"


def test_process_keeps_rows_unchanged_and_counts_drops_by_reason():
    rows = [
        {"id": "a", "function": textwrap.dedent(KEEP).lstrip(), "name": "scale"},
        {"id": "b", "function": 'def f():\n    """Doc."""\n    return 1\n', "name": "f"},
        {"id": "c", "function": "def broken(:\n", "name": "broken"},
        {"id": "d", "function": "x = 1\n", "name": "x"},
    ]
    result = FilterStage(FilterParams()).process(rows)
    assert result.kept == rows[:1]
    assert [(d.row["id"], d.reason) for d in result.dropped] == [
        ("b", "no_arguments"), ("c", "syntax_error"), ("d", "not_a_function")]
    assert result.dropped[2].detail == "starts with Assign, not a function definition"


# The published pipeline's form of each rule (one setting each), on the examples that differ.
NESTED_ONLY = 'def f(x):\n    """Doc."""\n    def g():\n        return x\n    g()\n'


def test_nested_returns_count_only_in_the_published_form():
    assert reason(NESTED_ONLY) == "no_return_value"
    assert reason(NESTED_ONLY, nested_returns=True) is None
    bare = 'def f(x):\n    """Doc."""\n    def g():\n        return\n    g()\n'
    assert reason(bare, nested_returns=True) == "no_return_value"


@pytest.mark.parametrize("source, ours, published", [
    ('def f():\n    """Doc."""\n    return 1\n', "no_arguments", "no_arguments"),
    # The published `():` test misses these three no-argument functions ...
    ('async def f():\n    """Doc."""\n    return 1\n', "no_arguments", None),
    ('def f() -> int:\n    """Doc."""\n    return 1\n', "no_arguments", None),
    ('def f(\n):\n    """Doc."""\n    return 1\n', "no_arguments", None),
    # ... and ignores min_args.
    ('def f(x):\n    """Doc."""\n    return 1\n', None, None),
])
def test_arguments_counted_or_by_the_published_def_line_test(source, ours, published):
    assert reason(source) == ours
    assert reason(source, arguments_by_def_line=True) == published
    if published:
        assert verdict(source, arguments_by_def_line=True)[1] == "`():` on line 1"


@pytest.mark.parametrize("line, ours, published", [
    ("import osgeo", None, "'import os' in the text (substring)"),
    ("import json, os", "import os (line 3)", None),
    ('"""Read it from os.environ."""', None, "'from os' in the text (substring)"),
    ("x = sys.argv", "uses `sys` without importing it, so it would be imported",
     "uses `sys` without importing it, so it would be imported"),
    ("import json", None, None),
])
def test_bad_imports_by_module_or_as_published_substrings(line, ours, published):
    source = f'def f(x):\n    """Doc."""\n    {line}\n    return x\n'
    assert (verdict(source) or (None, None))[1] == ours
    assert (verdict(source, bad_import_substrings=True) or (None, None))[1] == published


def test_bad_words_debug_is_bug_only_as_a_substring():
    source = 'def f(x):\n    """Turn debug output on."""\n    return x\n'
    assert reason(source) is None
    assert reason(source, bad_word_substrings=True) == "bad_word"


def test_the_card_names_each_difference_from_the_published_rules_with_its_count():
    from builder.stages import published_rules

    ours = FilterStage(FilterParams()).card_notes()
    facts = published_rules.measured()
    for setting in ("nested_returns", "arguments_by_def_line", "bad_word_substrings",
                    "bad_import_substrings"):
        counted = f"{facts['changed'][setting]:,} of {facts['of'][setting]:,} functions"
        assert f"({counted}; `{setting}: true` restores the published rule)" in ours
    published = FilterStage(FilterParams(
        nested_returns=True, arguments_by_def_line=True, bad_word_substrings=True,
        bad_import_substrings=True,
    )).card_notes()
    assert "Deliberate differences" not in published
    assert "no line starting with `def ` that contains `():`" in published


def test_every_published_rule_is_a_setting_and_has_a_measured_count():
    from builder.stages import published_rules
    from builder.stages.extract import ExtractParams
    from builder.stages.seeds.typecheck import TypecheckParams

    params = {"extract": ExtractParams(), "filter": FilterParams()}
    params["typecheck"] = TypecheckParams()
    facts = published_rules.measured()
    for rule in published_rules.RULES:
        assert hasattr(params[rule.step], rule.setting)
        assert getattr(params[rule.step], rule.setting) != rule.published  # ours by default
        assert 0 < facts["changed"][rule.setting] < facts["of"][rule.setting]
