"""The funnel of a recipe's published run, as a Markdown table: per step, its rows in, kept and
dropped by reason, the tokens it generated and their rate over its wall time (engine start and
prompt processing included), its time, and its notes (execution verdicts, repairs, formats).

    python benchmarks/funnel.py hub_configs/smollm2-135m.yaml [--set KEY=VALUE ...]

Reads only the manifests of the steps' current heads (nothing runs). The README's real-model
tables are this script's output.
"""

from __future__ import annotations

import argparse
from collections import Counter

from builder.pipeline.publish import read_manifest
from builder.pipeline.recipe import load_recipe
from builder.pipeline.repo_names import repo_for
from builder.pipeline.step import KINDS
from builder.registry import STEPS
from builder.store import open_store


def funnel_rows(recipe) -> list[list[str]]:
    store = open_store(recipe.hub.store)
    rows = []
    for name in recipe.stage_names():
        kind = STEPS.load(name).kind
        repos = open_store(store.uri, KINDS[kind])
        repo = repo_for(recipe, name, store)
        if not repos.repo_exists(repo):
            rows.append([name, "not published", "", "", "", "", "", ""])
            continue
        manifest = read_manifest(repos, repo, repos.resolve(repo)) or {}
        timings = manifest.get("timings") or {}
        seconds = timings.get("process_s") or timings.get("run_s")
        if kind != "dataset":
            rows.append([name, kind, "", "", "", "", _seconds(seconds), ""])
            continue
        stats = manifest.get("stats") or {}
        drops = Counter(manifest.get("drops") or {})
        shown = ", ".join(f"{r} {n}" for r, n in drops.most_common(4))
        if len(drops) > 4:
            shown += f", {len(drops) - 4} more reasons"
        tokens = stats.get("output_tokens")
        rate = f"{tokens / seconds:,.0f}" if tokens and seconds else ""
        notes = ", ".join(
            f"{key} {n:,}" for key, n in sorted(stats.items())
            if key.startswith(("status:", "repaired_", "format_"))
        )  # fmt: skip
        rows.append([
            name, f"{manifest.get('rows_in'):,}", f"{manifest.get('rows_out'):,}",
            shown or "-", f"{tokens:,}" if tokens else "", rate, _seconds(seconds), notes,
        ])  # fmt: skip
    return rows


def _seconds(value) -> str:
    return f"{value:,.0f} s" if value else ""


# The smallest setting, a run of seconds that the test suite makes (tests/test_benchmarks.py;
# {tmp}: a fresh folder, {port}: a free port, {root}: the repository): a change that breaks the
# script fails CI.
SMALLEST = [
    "{root}/hub_configs/tiny.yaml", "--set", "hub.store=local:{tmp}/store",
    "--set", "hub.namespace=tester",
]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    recipe = load_recipe(args.recipe, args.overrides)
    headers = ["step", "rows in", "kept", "dropped by reason", "tokens", "tokens/s", "time", "notes"]
    print("| " + " | ".join(headers) + " |")
    print("| --- | ---: | ---: | --- | ---: | ---: | ---: | --- |")
    for row in funnel_rows(recipe):
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
