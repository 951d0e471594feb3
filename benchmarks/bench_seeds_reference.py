"""Seeds side by side: the published pipeline's seed gathering and ours, on the same corpus.

    python benchmarks/bench_seeds_reference.py [--source all] [--limit 5000] [--work DIR]
        [--before OLD_CHECKOUT] [--write]

Needs tree-sitter and tree-sitter-python (the published extraction) and Pyright's command line
(`pip install tree-sitter tree-sitter-python`; Pyright comes with our `[seeds]` extra).

The corpus: this Python's own files (`python:all`: the standard library, then site-packages),
in order, UTF-8 ones only, until the published extraction has found `--limit` functions. The
published side is `reference_seeds.py` (its scripts' behaviour rebuilt: see there), with
text-dedup itself for near-dedup where it is installed (`pip install --no-deps text-dedup
click-option-group`), else our `dedup` in `mode: reference`, which removes exactly its set
(`bench_dedup_reference.py`). Our side is `builder run` of a recipe with the seed steps
(extract .. dedup, as `hub_configs/starcoder2-15b.yaml`: dedup `mode: reference`, 250
permutations, seed 42; decontamination against the shipped HumanEval+ and MBPP+), twice: with
our rules, and with the published form of every rule (`REFERENCE_RULES`); with `--before`,
first with an older checkout's code and defaults. The judge is left out on both sides (it
needs the 15B model).

Functions are matched by file and line of their `def`. Printed: both funnels; for each of our
runs, at three checkpoints (extracted, before near-dedup, seeds), the functions in both, only
the reference's and only ours, each difference in a named class (`CLASSES`) with examples;
then how many functions each rule setting decides differently on its own. `--write` saves
those counts to `builder/data/published_rules.json`, which the cards quote. Steps already
published in `--work` are not run again (delete it to start over).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import yaml
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reference_seeds as ref  # noqa: E402

from builder.data import BENCHMARKS_DIR, PUBLISHED_RULES  # noqa: E402
from builder.pipeline.folder_input import python_corpus  # noqa: E402
from builder.stages.seeds import function_rules as rules  # noqa: E402

log = logging.getLogger("bench_seeds_reference")
SEED_STEPS = ["extract", "filter", "imports", "typecheck", "decontaminate", "dedup"]
# Where both sides are compared: the step of ours whose output is each checkpoint.
CHECKPOINT_STEPS = {"extract": "extracted", "decontaminate": "before near-dedup",
                    "dedup": "seeds"}  # fmt: skip
REFERENCE_RULES = {
    "extract": {"docstring_quotes": "double", "trailing_comments": True},
    "filter": {"nested_returns": True, "arguments_by_def_line": True,
               "bad_word_substrings": True, "bad_import_substrings": True},
    "typecheck": {"type_checking_mode": "standard", "report_missing_imports": True},
}  # fmt: skip
# Why a function is a seed on one side only: (the side whose seed it is, the step and reason
# that dropped it on the other side) -> its class, named. Our steps' reasons are drop reasons;
# the reference's are those of `reference_seeds.gather` (a Pyright drop: its first error's rule).
DEDUP_ORDER = ("near-dedup order: the reference clusters every extracted function before any "
               "filter, ours the functions that passed them (other clusters, other survivors)")
NESTED = "a return with a value only in a nested function (`nested_returns`)"
CLASSES = {
    ("ours", "extract", "single quotes"): "docstring opened with ''' (`docstring_quotes`)",
    ("ours", "extract", "prefix"): 'docstring with a prefix: r""" (`docstring_quotes`)',
    ("ours", "extract", "empty"): "empty docstring (`docstring_quotes`)",
    ("ours", "dedup", "near-duplicate"): DEDUP_ORDER,
    ("reference", "dedup", "near_duplicate"): DEDUP_ORDER,
    ("ours", "hq_return", "no return with a value"): NESTED,
    ("ours", "filter", "no_return_value"): NESTED,
    ("reference", "filter", "no_return_value"): NESTED,
    ("ours", "filter", "no_arguments"): "`():` on the def line (`arguments_by_def_line`)",
    ("reference", "filter", "no_arguments"): "no argument, but no `():` on a line starting "
                                             "with `def ` (`arguments_by_def_line`)",
    ("ours", "filter", "bad_word"): "bad word inside a longer word (`bad_word_substrings`)",
    ("ours", "filter", "bad_import"): "`import X` / `from X` as a substring "
                                      "(`bad_import_substrings`)",
    ("ours", "pyright", "reportMissingImports"): "an import Pyright cannot resolve "
                                                 "(`report_missing_imports`)",
    ("ours", "pyright", "syntax"): "autoimport's default moved an import out of its block "
                                   "(`try: import x`), leaving code that does not parse "
                                   "(ours leaves imports in place)",
    ("ours", "filter", "contaminated"): "a benchmark string inside the function (ours matches "
                                        "normalised pieces, not raw substrings)",
    ("reference", "extract", "syntax_error"): "a file Python cannot parse (tree-sitter "
                                              "extracts from it anyway)",
    ("reference", "typecheck", "type_error"): "a Pyright error in our `code` that the "
                                              "reference's text has not (before issue 24: an "
                                              "undefined decorator name)",
    ("ours", "extract", "plain"): "a docstring of two adjacent literals: one string to "
                                  "Python, two to tree-sitter",
}  # fmt: skip


def build_corpus(source: str, limit: int, folder: Path, extractor: ref.Extractor) -> list:
    """Copies files into `folder` until the published extraction found `limit` functions;
    returns those functions, exact duplicates removed (the script kept a set of texts)."""
    functions, seen = [], set()
    for root, path, why in python_corpus(source).files:
        if why or len(functions) >= limit:
            continue
        data = path.read_bytes()
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        relative = Path(root.name) / path.relative_to(root)
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(data)
        for f in extractor.functions(str(relative), data):
            if f.text not in seen:
                seen.add(f.text)
                functions.append(f)
    return functions


def near_duplicates(functions: list, folder: Path) -> set[int]:
    """Indices that text-dedup (or our reference mode) removes."""
    rows = [{"id": f"r{i:05d}", "name": "", "function": f.text} for i, f in enumerate(functions)]
    try:
        import text_dedup  # noqa: F401
        from bench_dedup_reference import text_dedup_removed

        removed, tool = text_dedup_removed(rows, folder), "text-dedup"
    except ImportError:
        from bench_dedup_reference import ours_removed

        removed, tool = ours_removed(rows, "reference")[0], "our dedup mode: reference"
    log.warning("reference near-dedup by %s", tool)
    return {int(r[1:]) for r in removed}


def reference_side(functions: list, folder: Path) -> tuple[dict, dict]:
    """The published steps' checkpoints (sets of keys) and funnel. Its near-dedup ran right
    after extraction; here the later steps run on every extracted function and the near-dedup
    is applied after them, which gives the same seeds (a function's verdicts do not depend on
    the others: Pyright's files cannot import each other) and the set before near-dedup too."""
    extractor = ref.Extractor()
    removed = near_duplicates(functions, folder)
    benchmark = ref.contaminating_strings(_jsonl("HumanEvalPlus"), _jsonl("MbppPlus"))
    with _cwd(folder / "autoimport-cwd"):
        passed = ref.gather(functions, extractor, benchmark, progress=tqdm)
    for i in removed:
        functions[i].dropped = {"dedup": "near-duplicate", **functions[i].dropped}
    checkpoints = {
        "extracted": {_ref_key(f) for f in functions},
        "before near-dedup": {_ref_key(f) for f in passed},
        "seeds": {_ref_key(f) for f in passed if "dedup" not in f.dropped},
    }
    survivors = [f for i, f in enumerate(functions) if i not in removed]
    funnel = {"extracted": len(functions), "after dedup": len(survivors)}
    for step in ("hq_return", "pyright", "filter"):
        funnel[f"after {step}"] = funnel[list(funnel)[-1]] - sum(
            step in f.dropped for f in survivors
        )
    return checkpoints, funnel


def our_side(name: str, corpus: Path, work: Path, reference_rules: bool,
             checkout: Path | None = None) -> dict:  # fmt: skip
    """Runs the seed steps (with the code of `checkout`, an older clone, if given: its own
    defaults, no dedup mode); returns the checkpoints, the funnel and each dropped function's
    first (step, reason)."""
    stages = {
        "extract": {"source": str(corpus)}, "filter": {}, "imports": {}, "typecheck": {},
        "decontaminate": {"benchmarks": ["humaneval+", "mbpp+"]},
        "dedup": {"mode": "reference", "threshold": 0.5, "num_perm": 250, "seed": 42},
    }  # fmt: skip
    if reference_rules:
        for step, settings in REFERENCE_RULES.items():
            stages[step].update(settings)
    if checkout is not None:
        del stages["dedup"]["mode"]
    recipe = {"name": name, "model": "none", "work_dir": str(work / "work"),
              "hub": {"store": f"local:{work / 'store'}", "namespace": "local"},
              "sandbox": {"backend": "local"}, "stages": stages}  # fmt: skip
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    started = time.monotonic()
    with open(work / f"{name}.log", "w") as log_file:  # the steps' own logs, if one fails
        env = {**os.environ, "PYTHONPATH": str(checkout)} if checkout else None
        done = subprocess.run([sys.executable, "-m", "builder", "run", str(path)], env=env,
                              stdout=log_file, stderr=subprocess.STDOUT)  # fmt: skip
    if done.returncode:
        raise SystemExit(f"builder run {path} failed: see {work / f'{name}.log'}")
    log.warning("%s: seed steps in %.0f s", name, time.monotonic() - started)
    fate, funnel, docstrings, checkpoints = {}, {}, {}, {}
    for step in SEED_STEPS:
        kept = _export(work, f"local/{name}-{step}", "train")
        funnel[f"after {step}"] = len(kept)
        if step in CHECKPOINT_STEPS:
            checkpoints[CHECKPOINT_STEPS[step]] = {_key(row) for row in kept}
        if step == "extract":
            docstrings = {_key(row): _docstring_form(row["function"]) for row in kept}
        for row in _export(work, f"local/{name}-{step}", "rejected"):
            if row.get("function"):
                fate.setdefault(_key(row), (step, row["drop_reason"]))
            else:  # a file extract could not read or parse
                fate.setdefault((row["path"], None), (step, row["drop_reason"]))
    return {"fate": fate, "funnel": funnel, "docstrings": docstrings, "checkpoints": checkpoints}


def compare(theirs: dict, functions: list, ours: dict) -> None:
    """Prints, at each checkpoint, the functions in both and only one side, each difference
    in its class, with examples."""
    by_key = {_ref_key(f): f for f in functions}
    fate = ours["fate"]
    for checkpoint, reference_set in theirs.items():
        our_set = ours["checkpoints"][checkpoint]
        both = reference_set & our_set
        print(f"  {checkpoint}: reference {len(reference_set):,}, ours {len(our_set):,}, both "
              f"{len(both):,} ({len(both) / max(len(reference_set), 1):.1%} of the reference's)")
        classes, examples = Counter(), defaultdict(list)
        for key in reference_set - our_set:
            step, reason = fate.get(key) or fate.get((key[0], None)) or ("extract", "not found")
            classes["only the reference's: " + _class("reference", step, reason)] += 1
            examples["only the reference's: " + _class("reference", step, reason)].append(key)
        for key in our_set - reference_set:
            f = by_key.get(key)
            drops = {} if f is None else dict(f.dropped)
            if checkpoint != "seeds":
                drops.pop("dedup", None)
            step, reason = next(iter(drops.items()), ("extract", ours["docstrings"].get(key)))
            classes["only ours: " + _class("ours", step, reason)] += 1
            examples["only ours: " + _class("ours", step, reason)].append(key)
        for label, n in classes.most_common():
            shown = ", ".join(f"{p}:{line}" for p, line in sorted(examples[label])[:2])
            print(f"    {n:5,}  {label}   e.g. {shown}")


def _class(side: str, step: str, reason: str) -> str:
    named = CLASSES.get((side, step, reason))
    if named is None and side == "ours" and step == "pyright":
        named = f"Pyright's default mode reports {reason} (`type_checking_mode`)"
    return named or f"UNNAMED: {step} ({reason})"


def _docstring_form(text: str) -> str:
    """How a function's docstring opens: "plain", "single quotes", "prefix" or "empty"."""
    own = rules.without_decorators(text)
    first = rules.parse_function(own).body[0]
    opening = own.splitlines()[first.lineno - 1].encode()[first.col_offset :]
    if not first.value.value:
        return "empty"
    if opening[:1] in (b"r", b"R", b"u", b"U"):
        return "prefix"
    return "single quotes" if opening.startswith(b"\'\'\'") else "plain"


def rule_counts(corpus: Path) -> tuple[dict, int]:
    """How many functions each setting decides differently on its own, on our extraction."""
    from builder.stages.extract import extract_functions

    counts, total, seen = Counter(), 0, set()
    whole = rules.bad_word_pattern(ref.BAD_WORDS, substrings=False)
    inside = rules.bad_word_pattern(ref.BAD_WORDS, substrings=True)
    bad = set(ref.BAD_MODULES)
    for path in sorted(corpus.rglob("*.py")):
        try:
            content = path.read_text(encoding="utf-8")
            mine = extract_functions(content)
            double = {f["lineno"] for f in extract_functions(content, "double")}
            commented = extract_functions(content, trailing_comments=True)
            commented = {f["lineno"]: f["function"] for f in commented}
        except (SyntaxError, ValueError):
            continue
        mine = [f for f in mine if f["content_hash"] not in seen]  # as extract: once each
        seen.update(f["content_hash"] for f in mine)
        total += len(mine)
        counts["docstring_quotes"] += sum(f["lineno"] not in double for f in mine)
        counts["trailing_comments"] += sum(f["function"] != commented[f["lineno"]] for f in mine)
        for f in mine:
            node, text = rules.parse_function(f["function"]), f["function"]
            counts["nested_returns"] += (rules.no_return_value(node) is None) != (
                rules.no_return_value(node, True) is None)
            counts["arguments_by_def_line"] += (rules.too_few_arguments(node, 1) is None) != (
                rules.empty_parentheses_on_def_line(text) is None)
            counts["bad_word_substrings"] += (rules.bad_word(text, whole) is None) != (
                rules.bad_word(text, inside) is None)
            counts["bad_import_substrings"] += (rules.bad_import(node, bad) is None) != (
                rules.bad_import(node, bad, text) is None)
    return dict(counts), total


def typecheck_counts(work: Path) -> tuple[dict, int]:
    """The same for the two Pyright settings, on the `code` of our run's `imports` output:
    functions whose verdict (any error or none) each setting changes on its own."""
    from builder.stages.seeds.pyright_setup import pyright_settings, run_cli

    rows = _export(work, "local/ours-imports", "train")
    verdicts = {}
    for setting, settings in (("ours", pyright_settings(False)),
                              ("type_checking_mode", pyright_settings(False, "standard")),
                              ("report_missing_imports", pyright_settings(True))):  # fmt: skip
        with tempfile.TemporaryDirectory() as folder:
            for i, row in enumerate(rows):
                Path(folder, f"fn-{i:05d}.py").write_text(row["code"])
            verdicts[setting] = set(run_cli(Path(folder), settings, timeout_s=3600))
    changed = {s: len(verdicts[s] ^ verdicts["ours"]) for s in verdicts if s != "ours"}
    return changed, len(rows)


# The smallest setting, a run of seconds that the test suite makes (tests/test_benchmarks.py;
# {tmp}: a fresh folder, {port}: a free port, {root}: the repository): a change that breaks the
# script fails CI.
SMALLEST = ["--source", "stdlib", "--limit", "40", "--work", "{tmp}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="all", help="stdlib, site-packages or all")
    parser.add_argument("--limit", type=int, default=5000, help="functions the reference finds")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir(), "bench-seeds"))
    parser.add_argument("--before", type=Path, help="also run ours from this older checkout")
    parser.add_argument("--write", action="store_true", help="save the rule counts for cards")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    corpus = args.work / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    functions = build_corpus(args.source, args.limit, corpus, ref.Extractor())
    files = sum(1 for _ in corpus.rglob("*.py"))
    print(f"corpus: {files:,} files of python:{args.source}; the reference extracts "
          f"{len(functions):,} distinct functions")  # fmt: skip
    theirs, funnel = reference_side(functions, args.work)
    print(f"reference ({time.monotonic() - started:.0f} s): " + _funnel(funnel))
    runs = [("ours", False, None), ("ours-reference-rules", True, None)]
    if args.before:
        runs.insert(0, ("ours-before", False, args.before.resolve()))
    for name, reference_rules, checkout in runs:
        ours = our_side(name, corpus, args.work, reference_rules, checkout)
        print(f"{name}: " + _funnel(ours["funnel"]))
        compare(theirs, functions, ours)
    counts, total = rule_counts(corpus)
    of = dict.fromkeys(counts, total)
    typecheck_changed, checked = typecheck_counts(args.work)
    counts.update(typecheck_changed)
    of.update(dict.fromkeys(typecheck_changed, checked))
    print("functions each setting decides differently on its own (of those we extract; for "
          "Pyright's settings, of those our filter keeps):")  # fmt: skip
    for setting, n in counts.items():
        print(f"  {setting}: {n:,} of {of[setting]:,}")
    if args.write:
        python = "%d.%d" % sys.version_info[:2]
        facts = {"corpus": f"{files:,} files of Python {python}'s standard library and installed "
                           f"packages (`python:{args.source}`)",
                 "changed": counts, "of": of,
                 "measured_with": "benchmarks/bench_seeds_reference.py"}  # fmt: skip
        PUBLISHED_RULES.write_text(json.dumps(facts, indent=1) + "\n")
        print(f"wrote {PUBLISHED_RULES}")


def _funnel(funnel: dict) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in funnel.items())


def _ref_key(f: ref.RefFunction) -> tuple[str, int]:
    return (f.path, f.line)


def _key(row: dict) -> tuple[str, int]:
    """(file, line of the `def`): our `lineno` is the first decorator's line."""
    text = row["function"]
    decorators = len(text.splitlines()) - len(rules.without_decorators(text).splitlines())
    return (row["path"], row["lineno"] + decorators)


def _export(work: Path, repo: str, split: str) -> list[dict]:
    out = work / "export" / f"{repo.replace('/', '_')}-{split}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "builder", "store", "export", repo, str(out), "--store",
               f"local:{work / 'store'}", "--split", split]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True)
    return [json.loads(line) for line in out.read_text().splitlines()]


def _jsonl(prefix: str) -> list[dict]:
    path = next(BENCHMARKS_DIR.glob(f"{prefix}-*.jsonl.gz"))
    with gzip.open(path, "rt") as handle:
        return [json.loads(line) for line in handle]


@contextlib.contextmanager
def _cwd(folder: Path):
    folder.mkdir(parents=True, exist_ok=True)
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


if __name__ == "__main__":
    main()
