"""What a published step measured about its own work, for `builder plan` to reuse.

Every manifest gets a `measured` block when it is published: the step's yield (`keep_rate`:
rows out per row in; for generation, samples per prompt, output tokens per sample and rows kept
per sample), the kind of work it did and how fast (`tokens_per_s` for generation, with the
engine and model; `programs_per_s` for a sandbox step, with its backend; `rows_per_s`
otherwise) and the hardware it ran on (`cpus`, `gpus`). Rates count only fresh work: tokens of
samples the completion cache did not answer, programs the verdict cache did not answer; a run
answered entirely from a cache has no rate. Programs per row count what a run asks the
sandbox for, duplicates included. Older manifests hold the same facts in their counts,
so `measured()` derives the block for them too.
"""

from __future__ import annotations

import os
import sys


def measured(manifest: dict, engine: str | None = None) -> dict:
    if manifest.get("training"):  # a model step: conversations trained on per second
        return _training(manifest)
    stats = manifest.get("stats") or {}
    timings = manifest.get("timings") or {}
    seconds = timings.get("process_s") or timings.get("run_s")
    rows_in, rows_out = manifest.get("rows_in"), manifest.get("rows_out")
    settings = manifest.get("settings") or {}
    out: dict = {"cpus": os.cpu_count(), "gpus": _gpus()}
    if rows_in:
        out["keep_rate"] = round(rows_out / rows_in, 6)
    if stats.get("prompts") and stats.get("samples"):
        if rows_in:  # more than one prompt a row: the calibrated judge's reference prompt
            out["prompts_per_row"] = round(stats["prompts"] / rows_in, 6)
        return {**out, **_generation(stats, rows_out, seconds), "work": "tokens",
                "engine": engine, "model": settings.get("model")}  # fmt: skip
    if "sandbox" in settings:
        # programs a run asks for, duplicates included (the verdict cache answers those)
        programs = stats.get("mutants", rows_in - stats.get("status:no_code", 0) if rows_in else 0)
        sandbox = settings["sandbox"]
        backend = sandbox.get("backend") if isinstance(sandbox, dict) else str(sandbox)
        out.update(work="programs", sandbox=backend)
        if rows_in:
            out["programs_per_row"] = round(programs / rows_in, 6)
        if stats.get("cache_misses") and seconds:
            out["programs_per_s"] = round(stats["cache_misses"] / seconds, 3)
        return out
    out["work"] = "rows"
    if rows_in and seconds:
        out["rows_per_s"] = round(rows_in / seconds, 3)
    return out


def _generation(stats: dict, rows_out: int, seconds: float | None) -> dict:
    samples, tokens = stats["samples"], stats.get("output_tokens", 0)
    out = {
        "samples_per_prompt": round(samples / stats["prompts"], 6),
        "tokens_per_sample": round(tokens / samples, 3),
        "kept_per_sample": round(rows_out / samples, 6),
    }
    fresh = stats.get("cache_misses", samples)
    if fresh and seconds:
        out["tokens_per_s"] = round(tokens * fresh / samples / seconds, 2)
    return out


def _training(manifest: dict) -> dict:
    training, examples = manifest["training"], (manifest.get("dataset") or {}).get("conversations")
    out: dict = {"cpus": os.cpu_count(), "gpus": _gpus(), "work": "rows"}
    seconds = training.get("wall_time_s")
    if examples and seconds and not training.get("resumed_from"):
        out["rows_per_s"] = round(examples / seconds, 3)
    return out


def _gpus() -> int:
    """GPUs this process could use, asked only of a torch already loaded (a generation or a
    training step loads it; nothing else should pay for importing it)."""
    torch = sys.modules.get("torch")
    try:
        return torch.cuda.device_count() if torch is not None else 0
    except Exception:  # noqa: BLE001 - no driver: no GPU
        return 0
