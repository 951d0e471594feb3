"""`transformers` backend: local generation with `model.generate`, on CPU or one GPU.

Meant for small models, dry runs and tests, not for 2.4M responses. Sequences (every sample of
every request) are sorted by prompt length and generated in left-padded batches of
`engine.batch_size`. Seeds: each batch seeds torch with the seed of its first sample, so a
sample is reproducible for the same batch composition (and exactly `seed + i` when batches hold
one sequence); unlike vLLM, a sample is not a function of its own seed alone. A prompt longer
than the context (`engine.max_model_len`, default the model's `max_position_embeddings`) fails
with `prompt_too_long`; otherwise generation stops at the context's end (`length`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from builder.engines.base import Completion, Engine, OnDone, Request, cut_at_stop, error_completion
from builder.engines.config import EngineConfig
from builder.engines.model_folder import check_model_folder

log = logging.getLogger(__name__)


class TransformersEngine(Engine):
    backend = "transformers"

    def __init__(self, model: str, revision: str | None, config: EngineConfig) -> None:
        super().__init__(model, revision, config)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        # A local folder has no Hub revision (ours is a digest of its files).
        hub_revision = None if Path(model).expanduser().is_dir() else revision
        if hub_revision is None:
            check_model_folder(Path(model).expanduser())
        self.tokenizer = AutoTokenizer.from_pretrained(model, revision=hub_revision)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        dtype = "auto" if config.dtype == "auto" else getattr(torch, config.dtype)
        self.lm = AutoModelForCausalLM.from_pretrained(model, revision=hub_revision, dtype=dtype)
        self.lm.to(self.device).eval()
        self.max_len = config.max_model_len or getattr(
            self.lm.config, "max_position_embeddings", 4096
        )

    def _generate(self, requests: list[Request], on_done: OnDone) -> None:
        threads = self.config.cpu_threads if self.device == "cpu" else None
        if not threads:
            self._generate_all(requests, on_done)
            return
        # For a tiny model one thread is often fastest, and on a busy machine torch's default
        # (a thread per core) can be ten times slower. Set for this call only: it is global.
        previous = self.torch.get_num_threads()
        self.torch.set_num_threads(threads)
        try:
            self._generate_all(requests, on_done)
        finally:
            self.torch.set_num_threads(previous)

    def _generate_all(self, requests: list[Request], on_done: OnDone) -> None:
        encoded = [
            self.tokenizer(r.prompt, add_special_tokens=False)["input_ids"] for r in requests
        ]
        sequences = []  # (prompt length, request index, sample position)
        for i, (request, ids) in enumerate(zip(requests, encoded)):
            if len(ids) >= self.max_len:
                message = f"prompt of {len(ids)} tokens does not fit the context of {self.max_len}"
                self._finish(on_done, i, [error_completion("prompt_too_long", message)] * request.n)
                continue
            sequences += [(len(ids), i, j) for j in range(request.n)]
        # Similar lengths together (less padding); a batch never mixes sampling parameters.
        groups = {s: k for k, s in enumerate(dict.fromkeys(r.sampling for r in requests))}
        sequences.sort(key=lambda s: (groups[requests[s[1]].sampling], s[0], s[1], s[2]))
        pending = {i: [None] * r.n for i, r in enumerate(requests)}
        batch_size = max(1, self.config.batch_size)
        batch: list[tuple[int, int, int]] = []
        for sequence in sequences:
            if batch and (
                len(batch) == batch_size
                or requests[batch[0][1]].sampling != requests[sequence[1]].sampling
            ):
                self._run_batch(batch, requests, encoded, pending, on_done)
                batch = []
            batch.append(sequence)
        if batch:
            self._run_batch(batch, requests, encoded, pending, on_done)

    def _run_batch(self, batch, requests, encoded, pending, on_done: OnDone) -> None:
        torch = self.torch
        sampling = requests[batch[0][1]].sampling
        first = requests[batch[0][1]]
        torch.manual_seed(first.sample_seed(first.first_index + batch[0][2]) % 2**63)
        inputs = self.tokenizer.pad(
            {"input_ids": [encoded[i] for _, i, _ in batch]}, return_tensors="pt"
        ).to(self.device)
        width = inputs["input_ids"].shape[1]
        max_new = max(1, min(sampling.max_tokens, self.max_len - width))
        options = {"max_new_tokens": max_new, "pad_token_id": self.tokenizer.pad_token_id}
        if sampling.temperature > 0:
            options.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p)
        else:
            options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if sampling.stop:
            options.update(stop_strings=list(sampling.stop), tokenizer=self.tokenizer)
        if sampling.logprobs:  # the first step's logits, before any processor changes them
            options.update(output_logits=True, return_dict_in_generate=True)
        with torch.inference_mode():
            output = self.lm.generate(**inputs, **options)
        first = None
        if sampling.logprobs:
            first = torch.log_softmax(output.logits[0].float(), dim=-1)
            output = output.sequences
        for row, (prompt_len, i, j) in enumerate(batch):
            completion = self._completion(
                output[row, width:].tolist(), prompt_len, max_new, sampling
            )
            if first is not None:
                top = torch.topk(first[row], sampling.logprobs)
                completion.first_logprobs = {
                    self.tokenizer.decode([token]): float(value)
                    for value, token in zip(top.values.tolist(), top.indices.tolist())
                }
            pending[i][j] = completion
            if all(c is not None for c in pending[i]):
                self._finish(on_done, i, pending.pop(i))

    def _completion(
        self, new_ids: list[int], prompt_len: int, max_new: int, sampling
    ) -> Completion:
        eos, pad = self.tokenizer.eos_token_id, self.tokenizer.pad_token_id
        hit_eos = eos in new_ids
        if hit_eos:
            new_ids = new_ids[: new_ids.index(eos)]
        else:  # a sequence that ended before the batch's longest is padded at its end
            while new_ids and new_ids[-1] == pad:
                new_ids = new_ids[:-1]
        text = self.tokenizer.decode(new_ids, skip_special_tokens=True)
        text, stopped = cut_at_stop(text, sampling.stop)
        reason = "stop" if stopped or hit_eos or len(new_ids) < max_new else "length"
        tokens = len(new_ids) + (1 if hit_eos else 0)
        return Completion(text, reason, output_tokens=tokens, prompt_tokens=prompt_len)

    def _finish(self, on_done: OnDone, index: int, completions: list[Completion]) -> None:
        self._count(completions)
        on_done(index, completions)

    def close(self) -> None:
        self.lm = None
        if self.device == "cuda":
            self.torch.cuda.empty_cache()
