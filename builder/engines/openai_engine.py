"""`openai` backend: any OpenAI-compatible completions server (vLLM, SGLang, TGI, `transformers
serve`), through the official `openai` client.

Requests go out concurrently (at most `engine.max_concurrency` at a time) on the legacy
`/v1/completions` endpoint: completion mode, as the published pipeline prompts a base model.
The client retries 408, 409, 429, 5xx, timeouts and dropped connections with exponential backoff
(`engine.max_retries` times, honouring `Retry-After`). What is still failing after that stops the
run with a one-line error (the cache keeps every completion already received), except a request
the server rejects as bad (400/422, e.g. a prompt longer than its context): that request gets an
`error` completion and the stage drops its row with the reason.

`n` samples go in one request with `seed` = the seed of the first sample (vLLM's server gives
sample i seed + i, as the engine interface expects). A server that answers `n > 1` with fewer
choices (`transformers serve` ignores `n`) is then asked one sample per request, with seed + i.
Token counts per sample are the server's total divided among the choices (the API reports
totals). The API key is read from the environment variable named by `engine.api_key_env`;
it is never logged.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from builder.engines.base import Completion, Engine, OnDone, Request, cut_at_stop, refused
from builder.engines.config import EngineConfig
from builder.errors import BuilderError

log = logging.getLogger(__name__)


class OpenAIEngine(Engine):
    backend = "openai"

    @classmethod
    def worker_needs(cls, config: EngineConfig) -> dict[str, Any]:
        """A client: one worker keeps `max_concurrency` requests in flight; more would only
        multiply the load on the server."""
        return {"max_workers": 1}

    def __init__(self, model: str, revision: str | None, config: EngineConfig) -> None:
        super().__init__(model, revision, config)
        import openai  # noqa: F401  # fail now, with the engine's own message, if missing

        self.served_name = config.served_model_name or model
        self.server_takes_n = True  # until a server shows otherwise

    def _generate(self, requests: list[Request], on_done: OnDone) -> None:
        asyncio.run(self._generate_all(requests, on_done))

    async def _generate_all(self, requests: list[Request], on_done: OnDone) -> None:
        from openai import AsyncOpenAI

        client = AsyncOpenAI(
            base_url=self.config.base_url,
            api_key=os.environ.get(self.config.api_key_env) or "EMPTY",
            max_retries=self.config.max_retries,
            timeout=self.config.timeout_s,
        )
        self._slots = asyncio.Semaphore(max(1, self.config.max_concurrency))
        async with client:
            tasks = [
                asyncio.create_task(self._one(client, i, r, on_done))
                for i, r in enumerate(requests)
            ]
            try:
                await asyncio.gather(*tasks)
            finally:
                for task in tasks:
                    task.cancel()

    async def _one(self, client, index: int, request: Request, on_done: OnDone) -> None:
        completions: list[Completion] = []
        if request.n > 1 and self.server_takes_n:
            completions = await self._call(client, request, request.first_index, request.n)
            if len(completions) < request.n:  # (a failed call returns n error completions)
                if self.server_takes_n:
                    log.warning(
                        "%s ignores n > 1: asking one sample per request", self.config.base_url
                    )
                self.server_takes_n = False
                completions = completions[:1]  # sample first_index: n=1 with the same seed
        if len(completions) < request.n:
            rest = range(request.first_index + len(completions), request.first_index + request.n)
            singles = await asyncio.gather(*(self._call(client, request, i, 1) for i in rest))
            completions += [c[0] for c in singles]
        completions = completions[: request.n]
        self._count(completions)
        on_done(index, completions)

    async def _call(self, client, request: Request, first: int, n: int) -> list[Completion]:
        """Samples first .. first + n - 1 of `request`, or one `error` completion per sample."""
        import openai

        sampling = request.sampling
        async with self._slots:
            try:
                response = await client.completions.create(
                    model=self.served_name,
                    prompt=request.prompt,
                    n=n,
                    seed=request.sample_seed(first),
                    temperature=sampling.temperature,
                    top_p=sampling.top_p,
                    max_tokens=sampling.max_tokens,
                    stop=list(sampling.stop) or None,
                    **({"logprobs": sampling.logprobs} if sampling.logprobs else {}),
                )
            except (openai.BadRequestError, openai.UnprocessableEntityError) as err:
                return [refused(_error_message(err))] * n
            except openai.NotFoundError as err:
                raise BuilderError(
                    f"model '{self.served_name}' not found at {self.config.base_url}: "
                    f"{_error_message(err)}"
                ) from None
            except openai.APIError as err:
                raise BuilderError(
                    f"openai engine at {self.config.base_url} failed after "
                    f"{self.config.max_retries} retries: {type(err).__name__}: "
                    f"{_error_message(err)}"
                ) from None
        return self._completions(response, sampling)

    def _completions(self, response, sampling) -> list[Completion]:
        choices = sorted(response.choices, key=lambda c: c.index)
        usage = response.usage
        prompt_tokens = getattr(usage, "prompt_tokens", 0) or 0
        details = getattr(usage, "prompt_tokens_details", None)
        cached = getattr(details, "cached_tokens", 0) or 0
        total_out = getattr(usage, "completion_tokens", 0) or 0
        completions = []
        for k, choice in enumerate(choices):
            text, _ = cut_at_stop(choice.text or "", sampling.stop)
            share = total_out // len(choices) + (1 if k < total_out % len(choices) else 0)
            reason = "length" if choice.finish_reason == "length" else "stop"
            completion = Completion(text, reason, share, prompt_tokens, cached)
            top = getattr(getattr(choice, "logprobs", None), "top_logprobs", None)
            if sampling.logprobs and top:
                completion.first_logprobs = {str(k): float(v) for k, v in top[0].items()}
            completions.append(completion)
        return completions


def _error_message(err: Exception) -> str:
    body = getattr(err, "body", None)
    if isinstance(body, dict):
        detail = body.get("detail") or body.get("message") or body.get("error")
        if isinstance(detail, dict):
            detail = detail.get("message")
        if detail:
            return " ".join(str(detail).split())[:300]
    return " ".join(str(err).split())[:300]
