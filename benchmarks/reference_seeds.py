"""The published pipeline's seed gathering, rebuilt from its scripts' behaviour for side-by-side
runs (`bench_seeds_reference.py`). Not part of the package.

Rebuilt, not copied: the scripts of bigcode-project/starcoder2-self-align (`seed_gathering/`)
need tree-sitter 0.20's API, a grammar compiled from a git submodule, a GPU and the Hub. What
each of their steps does to a function was read from them and is written here in our own words
against today's py-tree-sitter (0.25+) and tree-sitter-python wheels:

1. `generate_from_the_stack.py`: every `function_definition` that starts in column 0 (so
   top-level, decorators not part of it) whose body's first statement is a string opening and
   closing with exactly three double quotes (no `r`/`u` prefix) and not empty. The text is
   tree-sitter's node, which ends at the function's last child: an indented comment after the
   last statement is inside it. tree-sitter parses a file with errors too, so functions of
   files that Python cannot parse are found. The script keeps a set of texts: exact duplicates
   go.
2. Near-dedup with text-dedup's MinHash at 0.5, on all of step 1 (done by the caller: text-dedup
   itself where installed, else our `dedup` in `mode: reference`, measured identical).
3. `high_quality_subset.py`: a `return` with a value anywhere in the text (nested functions
   too); `autoimport.fix_code` (10 s, the text unchanged on failure); Pyright with no
   configuration (its default mode) over batches of 250 files, one per function, named by the
   SHA-1 of its text; a file with any `- error:` line in Pyright's report is dropped.
4. `filter_dataset.py`'s static checks, on the text after step 3 (imports included): the
   lowercased text contains none of the bad words nor `import X` / `from X` for a bad module;
   no benchmark docstring or solution is a substring of it; at most 150 lines; no line that
   starts with `def ` contains `():`; a `return` with a value. (Its last check, that the
   first statement still opens or closes with three double quotes, holds after step 1.)
"""

from __future__ import annotations

import hashlib
import re
import signal
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

BAD_WORDS = ["todo", "fixme", "bug"]
BAD_MODULES = ["argparse", "os", "subprocess", "sys", "setuptools", "distutils", "matplotlib",
               "seaborn"]  # fmt: skip
BATCH = 250


@dataclass
class RefFunction:
    path: str
    line: int  # of its `def`, 1-based
    text: str  # as step 1 extracts it
    code: str = ""  # after autoimport (step 3)
    dropped: dict[str, str] = field(default_factory=dict)  # step -> reason, the first only


def _language():
    import tree_sitter
    import tree_sitter_python

    return tree_sitter.Language(tree_sitter_python.language())


_DOCUMENTED = r"""
((function_definition
   body: (block . (expression_statement
                    (string (string_start) @open (string_content) (string_end) @close)))) @fn
 (#eq? @open "\"\"\"") (#eq? @close "\"\"\""))
"""


class Extractor:
    """Step 1 on one file at a time."""

    def __init__(self):
        import tree_sitter

        language = _language()
        self.parser = tree_sitter.Parser(language)
        self.query = tree_sitter.Query(language, _DOCUMENTED)
        self.returns = tree_sitter.Query(language, "(return_statement) @r")
        self._cursor = tree_sitter.QueryCursor

    def functions(self, path: str, source: bytes) -> list[RefFunction]:
        tree = self.parser.parse(source)
        found = []
        for _, match in self._cursor(self.query).matches(tree.root_node):
            node = match["fn"][0]
            if node.start_point[1] != 0:
                continue  # not top-level
            text = source[node.start_byte : node.end_byte].decode("utf-8", "replace")
            found.append(RefFunction(path, node.start_point[0] + 1, text))
        return found

    def has_return_value(self, text: str) -> bool:
        """A `return` node with anything after the keyword, anywhere in the text."""
        tree = self.parser.parse(text.encode())
        for nodes in self._cursor(self.returns).captures(tree.root_node).values():
            if any(len(node.children) > 1 for node in nodes):
                return True
        return False


def infer_imports(text: str) -> str:
    import autoimport

    def give_up(*_):
        raise TimeoutError

    previous = signal.signal(signal.SIGALRM, give_up)
    signal.alarm(10)
    try:
        return autoimport.fix_code(text)
    except Exception:  # noqa: BLE001 - the script kept the text on any failure
        return text
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def pyright_failures(texts: list[str]) -> dict[str, str]:
    """The texts of one batch that Pyright (no configuration) reports an error in, each with
    the rule of its first error."""
    with tempfile.TemporaryDirectory() as folder:
        names = {}
        for text in texts:
            name = hashlib.sha1(text.encode()).hexdigest() + ".py"
            names[name] = text
            Path(folder, name).write_text(text)
        # `*` as the script passed it (no shell): Pyright expands it itself.
        report = subprocess.run(["pyright", "*"], cwd=folder, capture_output=True, text=True,
                                timeout=600).stdout  # fmt: skip
    failed, current = {}, None
    lines = report.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("  "):
            current = line.rsplit("/", 1)[-1].strip()
        elif "- error:" in line and current in names:
            # A message may go on over indented lines; the rule ends its last line.
            end = i
            while end + 1 < len(lines) and lines[end + 1].startswith("    "):
                end += 1
            rule = re.search(r"\((report\w+)\)\s*$", lines[end])
            failed.setdefault(names[current], rule.group(1) if rule else "syntax")
    return failed


def contaminating_strings(humaneval: Iterable[dict], mbpp: Iterable[dict]) -> list[str]:
    """Step 4's benchmark strings: HumanEval docstrings and (stripped) solutions but a few
    generic ones, MBPP prompts and solutions. From the EvalPlus files (whose originals the
    script loaded from the Hub): MBPP+ wraps each prompt in quotes, taken off here, and has
    378 of the 427 sanitized MBPP tasks."""
    generic = {"return x + y", "return len(string)", "return n**2", "return .join(strings)"}
    strings = []
    for task in humaneval:
        prompt = task["prompt"]
        quote = '"""' if '"""' in prompt else "'''"
        parts = prompt.split(quote)
        if len(parts) >= 3:
            strings.append(parts[-2].strip())
        if task["canonical_solution"].strip() not in generic:
            strings.append(task["canonical_solution"].strip())
    for task in mbpp:
        strings.append(task["prompt"].strip().strip("\"'").strip())
        strings.append(task["canonical_solution"].strip())
    return [s for s in strings if s]


def static_failure(code: str, extractor: Extractor, benchmark: list[str]) -> str | None:
    """Step 4's checks, in the script's order; the first that fails names the reason."""
    lower = code.lower()
    for word in BAD_WORDS:
        if word in lower:
            return "bad_word"
    for module in BAD_MODULES:
        if f"import {module}" in lower or f"from {module}" in lower:
            return "bad_import"
    if any(b in code for b in benchmark):
        return "contaminated"
    lines = code.split("\n")
    if len(lines) > 150:
        return "too_long"
    if any(line.startswith("def ") and "():" in line for line in lines):
        return "no_arguments"
    if not extractor.has_return_value(code):
        return "no_return_value"
    return None


def gather(functions: list[RefFunction], extractor: Extractor, benchmark: list[str],
           progress=lambda it, **kw: it) -> list[RefFunction]:  # fmt: skip
    """Steps 3 and 4 on the functions that step 2 kept; returns those that pass (the rest
    carry their reason in `dropped`)."""
    alive = []
    for f in functions:
        if extractor.has_return_value(f.text):
            alive.append(f)
        else:
            f.dropped["hq_return"] = "no return with a value"
    for f in progress(alive, desc="reference autoimport"):
        f.code = infer_imports(f.text)
    checked = []
    for start in progress(range(0, len(alive), BATCH), desc="reference pyright"):
        batch = alive[start : start + BATCH]
        failed = pyright_failures([f.code for f in batch])
        for f in batch:
            if f.code in failed:
                f.dropped["pyright"] = failed[f.code]
            else:
                checked.append(f)
    kept = []
    for f in checked:
        reason = static_failure(f.code, extractor, benchmark)
        if reason:
            f.dropped["filter"] = reason
        else:
            kept.append(f)
    return kept
