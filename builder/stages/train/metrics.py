"""The training log, as the Hub shows it: TensorBoard event files (the repository's "Training
metrics" tab), a loss plot (SVG, drawn here: no plotting library needed) and per-step rows.

Both are written from the Trainer's `log_history` when a revision is published, not while
training runs, so that a resumed run's files are those of an uninterrupted one (a live event
file would hold the steps redone after a resume twice).
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

# Per-step log keys shown in the card's table, in order (TRL's and transformers' names).
TABLE_KEYS = ("loss", "learning_rate", "grad_norm", "mean_token_accuracy", "num_input_tokens_seen")


def step_rows(log_history: list[dict]) -> list[dict]:
    """The training log entries (one per logging step), without the end-of-training summary."""
    return [e for e in log_history if "loss" in e and "step" in e]


def write_tensorboard(folder: Path, log_history: list[dict]) -> bool:
    """Event files under `folder`; False (and a warning) when tensorboardX is not installed."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        log.warning("tensorboardX is not installed: no TensorBoard files in the published model")
        return False
    folder.mkdir(parents=True, exist_ok=True)
    with SummaryWriter(logdir=str(folder)) as writer:
        for entry in step_rows(log_history):
            for key, value in entry.items():
                if key not in ("step", "epoch") and isinstance(value, (int, float)):
                    writer.add_scalar(f"train/{key}", value, entry["step"])
            writer.add_scalar("train/epoch", entry.get("epoch", 0.0), entry["step"])
    return True


def loss_svg(log_history: list[dict], width: int = 640, height: int = 320) -> str:
    """A line plot of the training loss by step, as an SVG document."""
    points = [(e["step"], e["loss"]) for e in step_rows(log_history)]
    left, right, top, bottom = 60, 20, 20, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">'
        ),
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="{height - 8}" text-anchor="middle">step</text>',
        (
            f'<text x="14" y="{height / 2}" text-anchor="middle" '
            f'transform="rotate(-90 14 {height / 2})">training loss</text>'
        ),
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>',
    ]
    if points:
        steps = [s for s, _ in points]
        losses = [v for _, v in points]
        x0, x1 = min(steps), max(max(steps), min(steps) + 1)
        y0, y1 = min(losses), max(losses)
        if y1 - y0 < 1e-12:
            y0, y1 = y0 - 0.5, y1 + 0.5

        def x(step: float) -> float:
            return left + (step - x0) / (x1 - x0) * plot_w

        def y(value: float) -> float:
            return top + (y1 - value) / (y1 - y0) * plot_h

        path = " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in points)
        parts.append(f'<polyline fill="none" stroke="#d6336c" stroke-width="1.5" points="{path}"/>')
        for value in (y0, (y0 + y1) / 2, y1):
            parts.append(
                f'<text x="{left - 4}" y="{y(value) + 4:.1f}" text-anchor="end">{value:.3g}</text>'
            )
        for step in (x0, x1):
            parts.append(
                f'<text x="{x(step):.1f}" y="{top + plot_h + 16}" text-anchor="middle">{step}</text>'
            )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def loss_table(log_history: list[dict]) -> list[str]:
    """Markdown rows: step and the table keys the log has."""
    rows = step_rows(log_history)
    keys = [k for k in TABLE_KEYS if any(k in r for r in rows)]
    lines = [
        "| step | " + " | ".join(keys) + " |",
        "| ---: | " + " | ".join("---:" for _ in keys) + " |",
    ]
    for row in rows:
        cells = [format_value(row.get(k), empty="") for k in keys]
        lines.append(f"| {row['step']} | " + " | ".join(cells) + " |")
    return lines


def format_value(value, empty: str = "-") -> str:
    """A number as the card shows it: 4 significant digits, thousands separated."""
    if value is None:
        return empty
    if isinstance(value, float):
        return f"{value:,.4g}"
    return f"{value:,}" if isinstance(value, int) else str(value)
