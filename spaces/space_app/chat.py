"""Chat with the recipe's model: streamed token by token, with the model's own chat template.

Two backends. Local: the model loaded with transformers (GPU if there is one, else CPU), one
model in memory at a time; a checkpoint of the store's model repository is a branch of it. A
model without a chat template gets `fallback_chat_template.jinja` (StarCoder2-Instruct's turns),
and the reply says so. Endpoint: any OpenAI-compatible server (vLLM, an Inference Endpoint,
`transformers serve`) by URL; which key it gets is `chat_guard.endpoint_key`'s business (the
server's own only for an endpoint its owner configured). A
response prefix is sent as a final assistant message to continue (`continue_final_message`,
which vLLM honours; other servers may start a new message instead).

Any failure (a model that does not load, an endpoint that does not answer) is a ChatError with
one line; the UI shows it and keeps working. The bounds on what a visitor may ask (message and
prompt length, tokens, seconds) are in `chat_guard.py`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from builder.errors import BuilderError
from space_app.catalog import Catalog
from space_app.chat_guard import ChatLimits, check_prompt_tokens

log = logging.getLogger(__name__)
FALLBACK_TEMPLATE = Path(__file__).with_name("fallback_chat_template.jinja")
NO_TEMPLATE_NOTE = "(this model has no chat template: StarCoder2-Instruct's format is used)"


class ChatError(BuilderError):
    pass


@dataclass(frozen=True)
class Settings:
    temperature: float = 0.2
    max_tokens: int = 512
    prefix: str = ""  # the start of the answer, e.g. "Here is a Python function" + code fence


def model_choices(catalog: Catalog) -> list[tuple[str, str]]:
    """(label, value): each model repository's main, then its checkpoint branches, then the
    recipe's base model and any other models. Values: `store:REPO@BRANCH` or `model:ID`."""
    choices = []
    for repo in catalog.config.model_repos:
        branches = catalog.branches(repo)
        for branch in sorted(branches, key=lambda b: (b != "main", b)):
            choices.append((f"{repo} @ {branch}", f"store:{repo}@{branch}"))
    for model in dict.fromkeys([catalog.config.base_model, *catalog.config.models]):
        if model:
            label = f"base: {model}" if model == catalog.config.base_model else model
            choices.append((label, f"model:{model}"))
    return choices


def messages_of(history: list[dict], message: str) -> list[dict]:
    """Gradio's chat history (content as a string or a list of parts) plus the new message, as
    plain {"role", "content"} turns."""
    turns = []
    for turn in history or []:
        content = turn.get("content")
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if isinstance(content, str) and turn.get("role") in ("user", "assistant", "system"):
            turns.append({"role": turn["role"], "content": content})
    return turns + [{"role": "user", "content": message}]


class LocalModels:
    """The one local model in memory, loaded on first use and replaced when another is asked."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog
        self._lock = threading.Lock()
        self._key: str | None = None
        self._loaded = None  # (tokenizer, model)

    def get(self, choice: str):
        with self._lock:
            if self._key != choice:
                self._loaded, self._key = None, None  # free the old one before loading
                self._loaded = self._load(choice)
                self._key = choice
            return self._loaded

    def _load(self, choice: str):
        path, revision = self._where(choice)
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(path, revision=revision)
            device = "cuda" if torch.cuda.is_available() else "cpu"
            model = AutoModelForCausalLM.from_pretrained(path, revision=revision, dtype="auto")
            model.to(device).eval()
        except ImportError as err:
            raise ChatError(
                f"the local backend needs torch and transformers ({err.name})"
            ) from None
        except Exception as err:  # noqa: BLE001 - any loader failure is the model's
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise ChatError(f"model {model_name(choice)} does not load: {first}") from None
        log.info("chat: loaded %s on %s", choice, device)
        return tokenizer, model

    def _where(self, choice: str) -> tuple[str, str | None]:
        kind, _, name = choice.partition(":")
        if kind not in ("model", "store"):  # the handler offers only the listed choices
            raise ChatError(f"not a model choice: {choice}")
        if kind == "model":  # the recipe's or the command line's: a .gguf file is converted once
            if name.lower().endswith(".gguf"):
                from builder.engines.gguf import materialize

                return str(materialize(name, self.catalog.config.work_dir)[0]), None
            return name, None
        repo, _, branch = name.rpartition("@")
        store = self.catalog.stores["model"]
        if self.catalog.config.on_hub:
            return repo, branch
        from builder.pipeline.input_opener import materialize

        commit = store.resolve(repo, branch)
        folder = Path(self.catalog.config.work_dir).expanduser() / "models"
        return str(
            materialize(store, repo, commit, folder / repo.replace("/", "--") / commit)
        ), None


def model_name(choice: str) -> str:
    kind, _, name = choice.partition(":")
    return name if kind in ("model", "store") else choice


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def render_prompt(tokenizer, messages: list[dict]) -> str:
    """The text the model continues: its own chat template, else the fallback."""
    template = None if has_chat_template(tokenizer) else FALLBACK_TEMPLATE.read_text()
    return tokenizer.apply_chat_template(
        messages, chat_template=template, tokenize=False, add_generation_prompt=True
    )


def _token_streamer(tokenizer):
    """A streamer that hands on every token's text as soon as it decodes to whole characters.

    transformers' TextIteratorStreamer holds text back until a space or newline, so an answer
    written without spaces (code like `x>>=1;y<<=2`, or an untrained model) arrives in one piece
    at the end. Only a trailing incomplete UTF-8 sequence (decoded as U+FFFD) is held back here.
    """
    from transformers import TextIteratorStreamer

    class TokenStreamer(TextIteratorStreamer):
        def put(self, value):
            if len(value.shape) > 1:
                value = value[0]
            if self.skip_prompt and self.next_tokens_are_prompt:
                self.next_tokens_are_prompt = False
                return
            self.token_cache.extend(value.tolist())
            text = self.tokenizer.decode(self.token_cache, **self.decode_kwargs)
            if text.endswith("\ufffd"):
                return
            self.on_finalized_text(text[self.print_len :])
            self.print_len = len(text)

    return TokenStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)


def stream_local(
    tokenizer, model, messages: list[dict], settings: Settings, limits: ChatLimits = ChatLimits()
) -> Iterator[str]:
    """The growing answer (the prefix, then each new piece), as transformers generates it,
    within `limits` (prompt tokens, seconds)."""
    from transformers import StoppingCriteria, StoppingCriteriaList

    prompt = render_prompt(tokenizer, messages) + settings.prefix
    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    check_prompt_tokens(int(inputs["input_ids"].shape[1]), limits)
    streamer = _token_streamer(tokenizer)
    stop = threading.Event()

    class _Stopped(StoppingCriteria):  # the user pressed stop: the generator was closed
        def __call__(self, input_ids, scores, **kwargs):
            return stop.is_set()

    options = {"max_new_tokens": int(settings.max_tokens), "streamer": streamer}
    options["max_time"] = float(limits.max_seconds)
    options["stopping_criteria"] = StoppingCriteriaList([_Stopped()])
    pad = tokenizer.pad_token_id
    options["pad_token_id"] = tokenizer.eos_token_id if pad is None else pad
    if settings.temperature > 0:
        options.update(do_sample=True, temperature=float(settings.temperature))
    else:
        options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    failure: list[BaseException] = []

    def generate():
        try:
            model.generate(**inputs.to(model.device), **options)
        except BaseException as err:  # noqa: BLE001 - reported by the consuming generator
            failure.append(err)
            streamer.end()

    worker = threading.Thread(target=generate, daemon=True)
    worker.start()
    text = settings.prefix
    try:
        for piece in streamer:
            if piece:
                text += piece
                yield text
    finally:
        stop.set()
        worker.join()
    if failure:
        raise ChatError(f"generation failed: {str(failure[0]).splitlines()[0]}")


def stream_endpoint(
    url: str,
    model: str,
    messages: list[dict],
    settings: Settings,
    key: str | None = None,
    limits: ChatLimits = ChatLimits(),
    timeout_s: float = 60.0,
) -> Iterator[str]:
    """The growing answer from an OpenAI-compatible server's streamed chat completion, sent
    `key` as its Bearer token (no Authorization header at all when None), cut after
    `limits.max_seconds`."""
    try:
        import openai
    except ImportError:
        raise ChatError("the endpoint backend needs the openai package") from None
    # A placeholder the client requires; the header it would make is omitted on every request.
    client = openai.OpenAI(base_url=url, api_key=key or "no-key", timeout=timeout_s, max_retries=0)
    headers = None if key else {"Authorization": openai.Omit()}
    deadline = time.monotonic() + limits.max_seconds
    extra = {}
    if settings.prefix:  # continue a started assistant message instead of opening a new one
        messages = messages + [{"role": "assistant", "content": settings.prefix}]
        extra = {"continue_final_message": True, "add_generation_prompt": False}
    try:
        if not model:
            model = next(iter(client.models.list(extra_headers=headers))).id
        stream = client.chat.completions.create(
            model=model,
            messages=messages,
            temperature=float(settings.temperature),
            max_tokens=int(settings.max_tokens),
            stream=True,
            extra_body=extra or None,
            extra_headers=headers,
        )
        text = settings.prefix
        with stream:
            for chunk in stream:
                piece = chunk.choices[0].delta.content if chunk.choices else None
                if piece:
                    text += piece
                    yield text
                if time.monotonic() > deadline:  # the rest of the answer is not waited for
                    return
    except openai.APIConnectionError as err:
        raise ChatError(f"the endpoint {url} does not answer: {_cause(err)}") from None
    except openai.APIStatusError as err:
        raise ChatError(
            f"the endpoint {url} answered HTTP {err.status_code}: {_cause(err)}"
        ) from None
    except StopIteration:
        raise ChatError(f"the endpoint {url} serves no model") from None


def _cause(err: BaseException) -> str:
    cause = err.__cause__ or err
    return (str(cause).strip().splitlines() or [type(cause).__name__])[0][:200]
