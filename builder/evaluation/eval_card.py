"""What an evaluation publishes (through the one publisher, `builder.pipeline.publish`): a
parquet file per benchmark (one row per sample: code, verdicts, failing inputs), the manifest's
facts and the card.

The card's configs make `load_dataset(repo, "humaneval_plus")` give that benchmark's samples;
its body has the scores and the `model-index` YAML that belongs in the model's card, which
`model_index_transform` writes into the evaluated model's own card when it is a repository of
the store.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import yaml

from builder.evaluation.model_index import model_index, model_index_results, update_card
from builder.pipeline.publish import update_card as publish_card
from builder.store import open_store


def config_name(benchmark: str) -> str:
    return benchmark.replace("+", "_plus").replace("-", "_")


def evaluation_facts(model: str, revision: str | None, results, generation: dict | None) -> dict:
    """The manifest's evaluation-specific facts."""
    return {
        "model": model,
        "model_revision": revision,
        "generation": generation,
        "benchmarks": {
            r.benchmark: {
                "version": r.version,
                "data_md5": r.data_md5,
                "tasks": r.tasks,
                "samples": len(r.verdicts),
                "scores": r.scores(),
                "grading": r.settings,
            }
            for r in results
        },
    }


def write_rows(folder: Path, results) -> dict:
    """One parquet file per benchmark under `folder/data`; returns the manifest's `splits`
    (one per benchmark config, as `load_dataset(repo, config)` sees them)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (folder / "data").mkdir(parents=True, exist_ok=True)
    splits = {}
    for result in results:
        rows = result.rows()
        name = f"data/{config_name(result.benchmark)}-00000-of-00001.parquet"
        pq.write_table(pa.Table.from_pylist(rows), folder / name)
        splits[config_name(result.benchmark)] = {"rows": len(rows), "files": [name]}
    return splits


def render_card(manifest: dict, repo: str) -> str:
    benchmarks = manifest["benchmarks"]
    metadata = {
        "pretty_name": f"Evaluation of {manifest['model']}",
        "license": "other",
        "tags": ["code", "evaluation", "code-instruct-builder"],
        "configs": [
            {
                "config_name": config_name(b),
                "data_files": [{"split": "test", "path": f"data/{config_name(b)}-*.parquet"}],
            }
            for b in benchmarks
        ],
    }
    for b in (manifest.get("baseline") or {}).get("benchmarks", {}):  # the base model's samples
        name = config_name(b)
        metadata["configs"].append({
            "config_name": f"baseline_{name}",
            "data_files": [{"split": "test", "path": f"baseline/data/{name}-*.parquet"}],
        })  # fmt: skip
    scores = {b: e["scores"] for b, e in benchmarks.items()}
    versions = {b: e["version"] for b, e in benchmarks.items()}
    index = model_index(Path(manifest["model"]).name, model_index_results(scores, versions))
    lines = [
        f"# Evaluation of `{manifest['model']}`", "",
        (f"Model revision: `{manifest['model_revision'] or '(local folder)'}`. Graded by "
         "code-instruct-builder in its sandbox with EvalPlus's verdicts (see `manifest.json` for "
         "every setting)."), "",
        "| benchmark | version | tasks | samples | score | pass@k |", "| --- | --- | ---: | ---: | --- | --- |",
    ]  # fmt: skip
    for name, entry in benchmarks.items():
        for key, metrics in entry["scores"].items():
            shown = ", ".join(f"{k} {100 * v:.1f}" for k, v in metrics.items())
            lines.append(
                f"| {name} | {entry['version']} | {entry['tasks']} | {entry['samples']} | {key} | {shown} |"
            )
    lines += [
        "", ("Each row of a config is one sample: its code, `base_status` / `plus_status` "
             "(`plus_status` is null when plus tests were skipped after a base failure), and the "
             "input EvalPlus reports as failing."), "",
        "## model-index", "", "For the model's card:", "", "```yaml",
        yaml.safe_dump({"model-index": index}, sort_keys=False).rstrip(), "```", "",
        f"Generation settings: `{json.dumps(manifest['generation'], sort_keys=True)}`", "",
        f"`load_dataset(\"{repo}\", \"{config_name(next(iter(benchmarks)))}\")`", "",
    ]  # fmt: skip
    return "---\n" + yaml.safe_dump(metadata, sort_keys=False) + "---\n\n" + "\n".join(lines)


def _headline(scores: dict) -> float:
    """The score a benchmark is known by: HumanEval+'s plus, DS-1000's overall pass@1."""
    for key in ("plus", "score", "base"):
        if key in scores:
            return scores[key].get("pass@1", 0.0)
    return 0.0


def model_index_transform(manifest: dict) -> Callable[[str], str]:
    """card -> card with the manifest's scores merged into its `model-index` (everything else
    of the card kept)."""
    benchmarks = manifest["benchmarks"]
    scores = {b: e["scores"] for b, e in benchmarks.items()}
    versions = {b: e["version"] for b, e in benchmarks.items()}
    name = Path(manifest["model"]).name
    return lambda card: update_card(card, name, model_index_results(scores, versions))


def is_repo_id(model: str) -> bool:
    """A `namespace/name` that is not a local folder."""
    return bool(re.fullmatch(r"[\w.-]+/[\w.-]+", model)) and not Path(model).exists()


def write_model_index(store_uri: str, model_repo: str, manifest: dict) -> str | None:
    """Merge the scores into the `model-index` of `model_repo`'s card, when that model is a
    repository of the store; returns the new revision, or None if the store has no such model.
    The rest of the card and every other file of the model stay as they are."""

    if not is_repo_id(model_repo):
        return None
    models = open_store(store_uri, repo_type="model")
    transform = model_index_transform({**manifest, "model": model_repo})
    return publish_card(models, model_repo, transform, "eval: update model-index")
