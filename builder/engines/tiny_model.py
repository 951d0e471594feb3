"""A tiny causal LM with random weights and a locally trained tokenizer, for tests and dry runs.

Nothing is downloaded: the tokenizer is a byte-level BPE trained in a second on this package's
own source, and the model is a 2-layer Starcoder2 (the family this project fine-tunes) with random
weights. Its outputs are noise, which is what the pipeline's parsers and counters must cope with.

Its heads are 64 wide (hidden 128, 2 heads): vLLM's CPU attention refuses narrower ones
("Unsupported CPU attention configuration" for 16), so the same folder serves the
`transformers` backend, `transformers serve`, and vLLM (in-process and `vllm serve`).
"""

from __future__ import annotations

from pathlib import Path

SPECIAL_TOKENS = ["<|endoftext|>", "<|pad|>"]


def build_tiny_model(output_dir: str | Path, vocab_size: int = 512, seed: int = 0) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Starcoder2Config, Starcoder2ForCausalLM

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    texts = [p.read_text() for p in sorted(Path(__file__).parents[1].rglob("*.py"))]  # builder/

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        pad_token="<|pad|>",
    )
    tokenizer.save_pretrained(output_dir)

    torch.manual_seed(seed)
    config = Starcoder2Config(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,  # head_dim 64: the narrowest vLLM's CPU attention takes
        num_key_value_heads=1,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    Starcoder2ForCausalLM(config).save_pretrained(output_dir)
    return output_dir
