import textwrap

from builder.stages.extract import ExtractParams, ExtractStage, extract_functions


def names(source: str) -> list[str]:
    return [f["name"] for f in extract_functions(textwrap.dedent(source))]


def test_keeps_top_level_functions_with_triple_quoted_docstrings():
    source = '''
        @cache
        def kept(a):
            """Doc."""
            return a

        async def kept_async(a):
            r\'\'\'Raw doc.\'\'\'
            return a

        def single(a):
            "single-quoted"
            return a

        def none(a):
            return a

        def not_a_string(a):
            1
            return a

        class C:
            def method(self):
                """Doc."""
                return 1

        def outer(a):
            """Doc."""
            def inner(b):
                """Nested: part of outer, not a row of its own."""
                return b
            return inner(a)
        '''
    assert names(source) == ["kept", "kept_async", "outer"]


def test_function_text_includes_decorators_and_provenance_fields():
    (row,) = extract_functions('x = 1\n\n@a\n@b(1)\ndef f(x):\n    """Doc\n    more."""\n    return x\n')
    assert row["function"] == '@a\n@b(1)\ndef f(x):\n    """Doc\n    more."""\n    return x\n'
    assert row["lineno"] == 3
    assert row["docstring"] == "Doc\nmore."
    assert row["id"] == row["content_hash"][:16] and len(row["content_hash"]) == 64


def test_one_line_def_and_non_ascii_prefix_are_handled():
    source = 'π = 3\ndef f(x): """Doc."""; return x\n'
    assert names(source) == ["f"]


def test_process_counts_and_drops_with_reasons():
    stage = ExtractStage(ExtractParams(max_file_bytes=200))
    rows = [
        {"content": 'def f(x):\n    """Doc."""\n    return x\n', "path": "ok.py", "repo": "r", "license": "mit"},
        {"content": "def broken(:\n    '''x'''\n", "path": "bad.py", "repo": "r", "license": None},
        {"content": None, "path": "latin1.py", "repo": "r", "license": None},
        {"content": "x = 1\n" * 100, "path": "big.py", "repo": "r", "license": None},
        {"content": "x = 1\n", "path": "plain.py", "repo": "r", "license": None},
    ]
    result = stage.process(rows)
    assert [r["name"] for r in result.kept] == ["f"]
    assert result.kept[0]["path"] == "ok.py" and result.kept[0]["license"] == "mit"
    reasons = {d.row["path"]: d.reason for d in result.dropped}
    assert reasons == {"bad.py": "syntax_error", "latin1.py": "unreadable", "big.py": "file_too_large"}
    assert result.stats["files"] == 5 and result.stats["files_without_candidates"] == 1


def test_finalize_drops_exact_duplicates_across_chunks():
    stage = ExtractStage(ExtractParams())
    rows = [{"content_hash": h, "path": p} for h, p in [("a", "1"), ("b", "2"), ("a", "3")]]
    out = list(stage.finalize(iter(rows)))
    kept = [r["path"] for r in out if isinstance(r, dict)]
    dropped = [d.row["path"] for d in out if not isinstance(d, dict)]
    assert kept == ["1", "2"] and dropped == ["3"]


DOCSTRING_FORMS = '''
    def plain(a):
        """Doc."""
        return a

    def single_quotes(a):
        \'\'\'Doc.\'\'\'
        return a

    def raw(a):
        r"""Doc with a \\d."""
        return a

    def empty(a):
        """"""
        return a
    '''


def test_docstring_quotes_any_or_as_the_published_query_matched():
    source = textwrap.dedent(DOCSTRING_FORMS)
    assert [f["name"] for f in extract_functions(source)] == ["plain", "single_quotes", "raw", "empty"]
    # The published pipeline's tree-sitter query: a non-empty """ string, no prefix.
    assert [f["name"] for f in extract_functions(source, "double")] == ["plain"]
    assert ExtractParams(docstring_quotes="double").docstring_quotes == "double"


def test_docstring_quotes_is_checked():
    import pytest

    from builder.errors import RecipeError

    with pytest.raises(RecipeError, match="docstring_quotes must be 'any' or 'double'"):
        ExtractParams(docstring_quotes="single")


TRAILING = (
    'def f(x):\n    """Doc."""\n    if x:\n        return 1\n        # inside the if\n\n'
    "    # at the body's indentation, after a blank line\n"
    "  # indented less: ends the function, for tree-sitter too\n"
    "    # so this one is not part of it\n"
    "# column 0\nY = 2\n"
)


def test_trailing_comments_kept_only_where_tree_sitter_puts_them_in_the_function():
    (ours,) = extract_functions(TRAILING)
    assert ours["function"] == 'def f(x):\n    """Doc."""\n    if x:\n        return 1\n'
    (published,) = extract_functions(TRAILING, trailing_comments=True)
    assert published["function"] == (
        'def f(x):\n    """Doc."""\n    if x:\n        return 1\n        # inside the if\n\n'
        "    # at the body's indentation, after a blank line\n"
    )
    # A line of code after a comment ends it too.
    (code_after,) = extract_functions('def g(x):\n    """D."""\n    return x\n    # c\nZ = 1\n    # d\n', trailing_comments=True)
    assert code_after["function"].endswith("return x\n    # c\n")


def test_new_settings_at_their_defaults_leave_the_fingerprint_as_before():
    """Settings added after revisions were published: a revision published before them (by a
    recipe that could not name them) is still up to date; setting one is a new revision."""
    before = ExtractParams().fingerprint_items()
    assert "docstring_quotes" not in before and "trailing_comments" not in before
    assert ExtractParams(docstring_quotes="double").fingerprint_items()["docstring_quotes"] == "double"
    assert ExtractParams(trailing_comments=True).fingerprint_items() != before
