"""What a Space visitor may ask of the chat: which credential an endpoint gets, how long a
conversation may be, how many tokens and seconds an answer may take.

A deployed Space runs with its owner's token (`HF_TOKEN`, and `ENDPOINT_API_KEY` if set) as
secrets, and any visitor can type an endpoint URL. So a credential of the server goes only to an
endpoint its owner configured (`builder space serve|deploy --endpoint URL`, or the Space
variable `ENDPOINT_URL`, comma-separated); any other URL gets only the key the visitor typed,
and no Authorization header at all when they typed none.

The bounds keep one visitor from holding the server: a message or a conversation over its
character bound is refused in one line before anything is tokenized, a prompt over its token
bound likewise, the answer's tokens and wall-clock time are capped, and the chat serves
`concurrency` visitors at once (Gradio's default is one at a time per event).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from builder.errors import BuilderError


class ChatRefused(BuilderError):
    """A visitor's request over one of the bounds: one line, nothing was generated."""


@dataclass(frozen=True)
class ChatLimits:
    max_message_chars: int = 16_000  # the new message
    max_conversation_chars: int = 64_000  # history and message together
    max_prompt_tokens: int = 4096  # the rendered prompt, as the model's tokenizer counts it
    max_new_tokens: int = 4096  # the largest "max tokens" a visitor may ask for
    max_seconds: float = 120.0  # one answer's generation, wall clock
    concurrency: int = 4  # chats served at once


def check_conversation(messages: list[dict], limits: ChatLimits, prefix: str = "") -> None:
    """Refuse a new message (or response prefix) or a conversation (the visitor's history
    counts: the API takes it from the caller) over the character bounds."""
    message = max(messages[-1]["content"] if messages else "", prefix, key=len)
    if len(message) > limits.max_message_chars:
        raise ChatRefused(
            f"message too long: {len(message):,} characters (at most {limits.max_message_chars:,})"
        )
    total = sum(len(m["content"]) for m in messages) + len(prefix)
    if total > limits.max_conversation_chars:
        raise ChatRefused(
            f"conversation too long: {total:,} characters (at most "
            f"{limits.max_conversation_chars:,}); start a new chat"
        )


def check_prompt_tokens(count: int, limits: ChatLimits) -> None:
    if count > limits.max_prompt_tokens:
        raise ChatRefused(
            f"message too long: the prompt is {count:,} tokens (at most "
            f"{limits.max_prompt_tokens:,}); start a new chat or shorten it"
        )


def bounded(temperature, max_tokens, limits: ChatLimits) -> tuple[float, int]:
    """The sampling settings a caller sent, clamped to what the page's sliders allow."""
    return min(max(float(temperature), 0.0), 2.0), min(
        max(int(max_tokens), 1), limits.max_new_tokens
    )


def _normal(url: str) -> str:
    return url.strip().rstrip("/")


def configured_endpoints(config_endpoints: list[str]) -> set[str]:
    """The owner's endpoints: the Space's configuration and the `ENDPOINT_URL` variable."""
    from_env = os.environ.get("ENDPOINT_URL", "").split(",")
    return {_normal(u) for u in [*config_endpoints, *from_env] if u.strip()}


def endpoint_key(url: str, visitor_key: str, config_endpoints: list[str]) -> str | None:
    """The key to send to `url`: the visitor's if they typed one; the server's
    (`ENDPOINT_API_KEY`, else `HF_TOKEN`) only for an endpoint the owner configured; else
    none."""
    if visitor_key and visitor_key.strip():
        return visitor_key.strip()
    if _normal(url) in configured_endpoints(config_endpoints):
        return os.environ.get("ENDPOINT_API_KEY") or os.environ.get("HF_TOKEN") or None
    return None
