"""The training progress bar: steps, loss, tokens per second and ETA (tqdm), in place of the
Trainer's own bar (which shows no loss or rate) and its printed log dicts."""

from __future__ import annotations

import time

from transformers import TrainerCallback


class ProgressBar(TrainerCallback):
    def __init__(self) -> None:
        self.bar = None
        self.started = 0.0
        self.tokens_at_start = 0

    def on_train_begin(self, args, state, control, **kwargs):
        from tqdm.auto import tqdm

        if state.is_world_process_zero:
            self.bar = tqdm(
                total=state.max_steps, initial=state.global_step, unit="step", desc="train",
                dynamic_ncols=True,
            )  # fmt: skip
        self.started = time.monotonic()
        self.tokens_at_start = state.num_input_tokens_seen

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is None or not logs or "loss" not in logs:
            return
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = (state.num_input_tokens_seen - self.tokens_at_start) / elapsed
        self.bar.set_postfix(loss=f"{logs['loss']:.4f}", tok_s=f"{rate:,.0f}", refresh=False)

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
