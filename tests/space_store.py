"""A small store for the Space's tests, built on the spot in seconds.

`extract` runs for real on the hand-made corpus of `helpers.write_corpus`. The stages after it
(concepts, instructions, responses, execute, select) are published through the one publisher
with the columns, drops and lineage their real runs publish, but with rows written here: their
real runs need the slow generation pipeline, and the Space only reads what they publish. The
recipe's other stages (filter .. judge) stay unpublished, as a store mid-run has them. A model
repository holds the tiny model (with a chat template) on main and two checkpoint branches, and
an evaluation repository holds evaluations of the base model and of both checkpoints.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

from builder.evaluation.eval_card import render_card as render_eval_card
from builder.pipeline.dataset_card import render_card
from builder.pipeline.publish import publish
from builder.pipeline.shards import ShardWriter
from builder.stages.execute.figures import StrengthFigures
from builder.store import open_store
from tests.helpers import TINY, run_cli, write_corpus

NAMESPACE = "local"
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
RESPONSE = (
    "[Reasoning]\nsample {i}\n[Implementation]\n```python\n{function}```\n"
    "[Explanation]\nIt works.\n[Tests]\n```python\nassert True\n```\n"
)
# pass@1 (fractions) of each evaluated revision: the base model, two checkpoints, the final
# model on main (whose manifest says it is step 3), and the training step each stands at.
SCORES = {
    "base": {"base": 0.25, "plus": 0.125},
    "step-000001": {"base": 0.5, "plus": 0.25},
    "step-000002": {"base": 0.75, "plus": 0.5},
    "main": {"base": 0.875, "plus": 0.625},
}
STEPS = {"base": 0, "step-000001": 1, "step-000002": 2, "main": 3}


def overrides(root: Path, tiny_model: Path) -> list[str]:
    """The tiny recipe's keys that point it at this store and model."""
    return [f"hub.store=local:{root / 'store'}", f"work_dir={root / 'work'}", f"model={tiny_model}"]


def cli_args(settings: list[str]) -> list[str]:
    return [arg for setting in settings for arg in ("--set", setting)]


def build(root: Path, tiny_model: Path) -> dict:
    """The store under `root/store`; returns facts the tests check against."""
    corpus = write_corpus(root / "corpus")
    # The recipe names the corpus: a local Space finds extracted files through it.
    settings = overrides(root, tiny_model) + [f"stages.extract.source={corpus}"]
    extract = [*cli_args(settings), "--set", "stages.extract.num_proc=1"]
    assert run_cli("run", TINY, "--only", "extract", *extract) == 0
    store = open_store(f"local:{root / 'store'}")
    seeds = _rows(store, f"{NAMESPACE}/tiny-extract")
    concepts = [{**r, "concepts": [f"{r['name']} basics", "docstrings"]} for r in seeds]
    _publish(store, "concepts", "extract", concepts, [])
    instructions, too_short = [], []
    for r in concepts:
        text = f"Write a function like `{r['name']}` that {r['docstring'].lower()}"
        row = {
            **r,
            "instruction_id": _id(r["id"], text),
            "instruction": text,
            "category": "function implementation",
            "language": "Python",
            "difficulty": "medium",
        }
        (too_short if r["name"] == "fetch" else instructions).append(row)
    _publish(
        store,
        "instructions",
        "concepts",
        instructions,
        [
            {
                **r,
                "instruction_id": None,
                "instruction": None,
                "drop_reason": "too_short",
                "drop_detail": "3 words",
            }
            for r in too_short
        ],
    )
    responses = [
        {
            **r,
            "response_id": _id(r["instruction_id"], str(i)),
            "sample_index": i,
            "response": RESPONSE.format(i=i, function=r["function"]),
            "finish_reason": "stop",
            "reasoning": f"sample {i}",
            "implementation": r["function"],
            "explanation": "It works.",
            "tests": "assert True",
        }
        for r in instructions
        for i in range(2)
    ]
    _publish(store, "responses", "instructions", responses, [])
    executed = [
        {
            **r,
            "exec_status": "pass" if r["sample_index"] == 0 else "fail",
            "exec_duration_s": 0.01,
            "exec_error": None if r["sample_index"] == 0 else "AssertionError",
            "exec_stdout": "",
            "exec_stderr": "",
        }
        for r in responses
    ]
    _publish(store, "execute", "responses", executed, [])
    mutated = [
        {**r, "test_strength": 0.5 if r["exec_status"] == "pass" else None,
         "test_mutants": 2 if r["exec_status"] == "pass" else 0,
         "test_mutants_killed": 1 if r["exec_status"] == "pass" else 0,
         "test_survivors": ["return@2"] if r["exec_status"] == "pass" else [],
         "mutation_skipped": "" if r["exec_status"] == "pass" else "not_passed",
         "exec_asserts": 1, "task_pass_rate": 0.5}
        for r in executed
    ]  # fmt: skip
    strengths = StrengthFigures()
    for row in mutated:
        strengths.add(row)
    _publish(store, "mutate", "execute", mutated, [], figures=strengths.figures())
    sft = []
    for r in mutated:  # select with remove_tests: the response loses its tests section
        if r["exec_status"] == "pass":
            response = r["response"].split("[Tests]")[0]
            sft.append(
                {
                    **r,
                    "response": response,
                    "messages": [
                        {"role": "user", "content": r["instruction"]},
                        {"role": "assistant", "content": response},
                    ],
                }
            )
    failed = [
        {**r, "drop_reason": "not_passed", "drop_detail": "fail: AssertionError"}
        for r in mutated
        if r["exec_status"] != "pass"
    ]
    _publish(store, "select", "mutate", sft, failed)
    checkpoints = _models(root, tiny_model)
    _evaluations(store, tiny_model, checkpoints)
    return {
        "store": f"local:{root / 'store'}",
        "corpus": corpus,
        "sft": sft,
        "executed": executed,
        "seeds": seeds,
        "checkpoints": checkpoints,
        "overrides": settings,
    }


def _id(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _rows(store, repo: str) -> list[dict]:
    import pyarrow.parquet as pq

    commit = store.resolve(repo)
    manifest = json.loads(store.read_text(repo, commit, "manifest.json"))
    files = manifest["splits"]["train"]["files"]
    local = store.fetch(repo, commit, files)
    return [row for f in files for row in pq.read_table(local[f]).to_pylist()]


def _publish(
    store, stage: str, parent_stage: str, kept: list[dict], dropped: list[dict], figures=()
) -> str:
    repo, parent_repo = f"{NAMESPACE}/tiny-{stage}", f"{NAMESPACE}/tiny-{parent_stage}"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        splits, columns = {}, {}
        for split, rows in (("train", kept), ("rejected", dropped)):
            writer = ShardWriter(folder, split)
            for row in rows:
                writer.write(row)
            files = writer.finish()
            splits[split] = {
                "rows": len(rows),
                "files": [str(f.relative_to(folder)) for f in files],
            }
            columns[split] = list(rows[0]) if rows else []
        drops: dict[str, int] = {}
        for row in dropped:
            drops[row["drop_reason"]] = drops.get(row["drop_reason"], 0) + 1
        manifest = {
            "format": 1,
            "kind": "dataset",
            "stage": stage,
            "repo": repo,
            "stage_version": 1,
            "description": f"{stage}, written by the Space's test store",
            "fingerprint": _id(stage, repo),
            "settings": {},
            "input": {"kind": "store", "repo": parent_repo, "revision": store.resolve(parent_repo)},
            "params": {},
            "recipe": {"name": "tiny", "file": str(TINY), "fingerprint": "test"},
            "versions": {},
            "created_at": "2026-11-30T00:00:00Z",
            "timings": {"run_s": 0.0},
            "splits": splits,
            "columns": columns,
            "rows_in": len(kept) + len(dropped),
            "rows_out": len(kept),
            "drops": drops,
            "stats": {},
            **({"figures": list(figures)} if figures else {}),
        }
        return publish(store, repo, folder, manifest, render_card(manifest), f"{stage}: test rows")


def _models(root: Path, tiny_model: Path) -> dict[str, str]:
    """local/tiny-train: main and two checkpoint branches; returns branch -> commit."""
    models = open_store(f"local:{root / 'store'}", "model")
    repo = f"{NAMESPACE}/tiny-train"
    commits = {}
    for branch in ("main", "step-000001", "step-000002"):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "model"
            shutil.copytree(tiny_model, folder)
            (folder / "chat_template.jinja").write_text(CHAT_TEMPLATE)
            manifest = {
                "kind": "model",
                "stage": "train",
                "repo": repo,
                "branch": branch,
                "global_step": STEPS[branch],
                "created_at": "2026-11-30T00:00:00Z",
            }
            commits[branch] = publish(
                models,
                repo,
                folder,
                manifest,
                f"# {repo} {branch}\n",
                f"train: {branch}",
                branch=branch,
            )
    return commits


def _evaluations(store, tiny_model: Path, checkpoints: dict[str, str]) -> None:
    repo = f"{NAMESPACE}/tiny-eval"
    parent = None
    for number, (name, scores) in enumerate(SCORES.items()):
        model = str(tiny_model) if name == "base" else f"{NAMESPACE}/tiny-train"
        revision = "local-0123" if name == "base" else checkpoints[name]
        rows = [
            {
                "benchmark": "humaneval+",
                "task_id": f"HumanEval/{t}",
                "sample_index": 0,
                "prompt": f"def task_{t}():\n",
                "completion": "    return 1\n",
                "finish_reason": "stop",
                "solution": f"def task_{t}():\n    return {t}\n",
                "base_status": "pass" if t else "fail",
                "plus_status": "pass" if t else None,
                "pass_base": bool(t),
                "pass_plus": bool(t),
                "base_failed_input": None if t else "[]",
                "plus_failed_input": None,
                "base_inputs_checked": 1,
                "plus_inputs_checked": 1,
                "grading_error": "",
            }
            for t in range(2)
        ]
        manifest = {
            "kind": "evaluation",
            "stage": "eval",
            "repo": repo,
            "model": model,
            "model_revision": revision,
            "generation": {"temperature": 0.0},
            "benchmarks": {
                "humaneval+": {
                    "version": "v0.1.10",
                    "tasks": 2,
                    "samples": 2,
                    "scores": {k: {"pass@1": v} for k, v in scores.items()},
                }
            },
            "splits": {
                "humaneval_plus": {
                    "rows": 2,
                    "files": ["data/humaneval_plus-00000-of-00001.parquet"],
                }
            },
            "input": {"kind": "model", "repo": model, "revision": revision},
            "created_at": f"2026-11-30T00:0{number}:00Z",
        }
        with tempfile.TemporaryDirectory() as tmp:
            import pyarrow as pa
            import pyarrow.parquet as pq

            folder = Path(tmp)
            (folder / "data").mkdir()
            pq.write_table(
                pa.Table.from_pylist(rows),
                folder / manifest["splits"]["humaneval_plus"]["files"][0],
            )
            parent = publish(
                store,
                repo,
                folder,
                manifest,
                render_eval_card(manifest, repo),
                f"eval: {name}",
                parent=parent,
            )
