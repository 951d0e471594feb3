"""Training throughput of the `train` step's trainer: tokens/s, step time, model FLOPs
utilization (MFU) and peak memory.

    python benchmarks/bench_train.py                       # CPU: a tiny random Starcoder2
    python benchmarks/bench_train.py --config starcoder2-15b --random-init --peak-tflops 989

The trainer is the step's own (`build_trainer`: TRL's SFTTrainer, our chat template, loss on the
responses), on synthetic conversations long enough that every example fills `--seq-len`
tokens. `--config starcoder2-15b --random-init` builds the StarCoder2-15B architecture (as its
config.json publishes it) with random weights directly on the GPU, so nothing is downloaded,
and trains it as `hub_configs/starcoder2-15b.yaml` does: bf16 weights, Adafactor, sequence
1280, batch 1 per device, gradient checkpointing. The first `--warmup` optimizer steps are not
timed.

MFU = achieved model FLOPs / peak FLOPs, with the model FLOPs per trained token taken as
6 N + 12 L H S (N parameters less the input embedding, L layers, H hidden size, S sequence
length: forward and backward matmuls plus attention scores; recomputation by gradient
checkpointing does not count). `--peak-tflops` is the device's dense bf16 peak (H100/H200 SXM:
989). Peak memory is CUDA's `max_memory_allocated`.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

ARCHITECTURES = {
    # bigcode/starcoder2-15b's config.json
    "starcoder2-15b": {
        "hidden_size": 6144, "intermediate_size": 24576, "num_hidden_layers": 40,
        "num_attention_heads": 48, "num_key_value_heads": 4, "vocab_size": 49152,
        "max_position_embeddings": 16384, "rope_theta": 100000.0, "sliding_window": 4096,
        "tie_word_embeddings": False,
    },
    "tiny": {
        "hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 512,
        "max_position_embeddings": 4096,
    },
}  # fmt: skip


def conversations(count: int, seq_len: int) -> list[list[dict]]:
    """Conversations whose responses are long enough to be truncated at `seq_len` tokens."""
    code = "def add(a, b):\n    return a + b\n\n" * (seq_len // 4)
    return [
        [{"role": "user", "content": f"Task {i}: write many small functions."},
         {"role": "assistant", "content": f"```python\n# {i}\n{code}```"}]
        for i in range(count)
    ]  # fmt: skip


class StepTimer:
    """Wall time and tokens at the end of each optimizer step (CUDA synchronised first)."""

    def __init__(self):
        from transformers import TrainerCallback

        timer = self

        class Callback(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                import torch

                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                timer.marks.append((time.perf_counter(), state.num_input_tokens_seen))

        self.marks: list[tuple[float, int]] = []
        self.callback = Callback()


def model_flops_per_token(model, config, seq_len: int) -> float:
    params = sum(p.numel() for p in model.parameters())
    params -= model.get_input_embeddings().weight.numel() * (not config.tie_word_embeddings)
    return 6 * params + 12 * config.num_hidden_layers * config.hidden_size * seq_len


# The smallest setting, a run of seconds that the test suite makes (tests/test_benchmarks.py;
# {tmp}: a fresh folder, {port}: a free port, {root}: the repository): a change that breaks the
# script fails CI.
SMALLEST = ["--steps", "1", "--warmup", "1", "--accumulation", "1", "--seq-len", "128"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tiny", choices=sorted(ARCHITECTURES))
    parser.add_argument(
        "--random-init", action="store_true", help="random weights (needed for a real size)"
    )
    parser.add_argument("--seq-len", type=int, default=None, help="default: 1280 (15B), 256 (tiny)")
    parser.add_argument("--batch", type=int, default=1, help="per device")
    parser.add_argument("--accumulation", type=int, default=4, help="micro-batches per step")
    parser.add_argument("--steps", type=int, default=6, help="timed optimizer steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (>= 1)")
    parser.add_argument("--peak-tflops", type=float, help="device peak, for MFU (H100/H200: 989)")
    parser.add_argument("--no-gradient-checkpointing", action="store_true")
    parser.add_argument(
        "--threads", type=int, default=1, help="CPU only: torch threads (more thrash a tiny model)"
    )
    args = parser.parse_args()
    if args.warmup < 1 or args.steps < 1:  # the timing starts at the end of the warm-up
        parser.error("--warmup and --steps must be at least 1")
    if args.config != "tiny" and not args.random_init:
        parser.error(f"--config {args.config} trains random weights: add --random-init")
    logging.basicConfig(level=logging.WARNING)

    import torch
    from transformers import Starcoder2Config, Starcoder2ForCausalLM

    from builder.engines.tiny_model import build_tiny_model
    from builder.stages.train.params import TrainParams
    from builder.stages.train.trainer import build_trainer, load_tokenizer, make_sft_config

    gpu = torch.cuda.is_available()
    if not gpu:
        torch.set_num_threads(args.threads)
    seq_len = args.seq_len or (1280 if args.config != "tiny" else 256)
    dtype = torch.bfloat16 if gpu else torch.float32
    config = Starcoder2Config(**ARCHITECTURES[args.config], bos_token_id=0, eos_token_id=0)
    with torch.device("cuda" if gpu else "cpu"):
        torch.manual_seed(0)
        model = Starcoder2ForCausalLM._from_config(config, dtype=dtype)
    steps = args.warmup + args.steps
    sft = {
        "optim": "adafactor", "learning_rate": 1e-5, "lr_scheduler_type": "linear",
        "max_steps": steps, "per_device_train_batch_size": args.batch,
        "gradient_accumulation_steps": args.accumulation, "max_length": seq_len, "bf16": gpu,
        "gradient_checkpointing": not args.no_gradient_checkpointing,
        "dataloader_pin_memory": gpu, "save_strategy": "no", "use_cpu": not gpu,
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        # The tiny test model's tokenizer: its vocabulary only has to cover the synthetic text.
        tokenizer = load_tokenizer(str(build_tiny_model(Path(tmp) / "tokenizer")), None)
        training_args = make_sft_config(TrainParams(sft=sft), Path(tmp) / "out")
        examples = steps * args.batch * args.accumulation
        timer = StepTimer()
        trainer = build_trainer(
            model, training_args, conversations(examples, seq_len), tokenizer, None,
            [timer.callback],
        )  # fmt: skip
        if gpu:
            torch.cuda.reset_peak_memory_stats()
        trainer.train()
    (t0, tokens0), (t1, tokens1) = timer.marks[args.warmup - 1], timer.marks[-1]
    rate = (tokens1 - tokens0) / (t1 - t0)
    params = sum(p.numel() for p in model.parameters())
    device = f"cuda: {torch.cuda.get_device_name()}" if gpu else f"cpu, {args.threads} threads"
    print(f"model: {args.config} ({params / 1e6:,.1f}M parameters, random init), {dtype}, {device}")
    print(f"batch: {args.batch} x {args.accumulation} accumulation, sequence {seq_len}, "
          f"gradient checkpointing {'off' if args.no_gradient_checkpointing else 'on'}, Adafactor")  # fmt: skip
    print(f"timed: {args.steps} optimizer steps, {(t1 - t0) / args.steps:.3f} s/step")
    print(f"throughput: {rate:,.0f} tokens/s")
    if args.peak_tflops:
        achieved = rate * model_flops_per_token(model, config, seq_len)
        print(f"MFU: {achieved / (args.peak_tflops * 1e12):.1%} "
              f"({achieved / 1e12:.1f} of {args.peak_tflops:g} TFLOP/s)")  # fmt: skip
    if gpu:
        print(f"peak memory: {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")


if __name__ == "__main__":
    main()
