"""The chat format of StarCoder2-Instruct, as a chat template of our own (`chat_template.jinja`).

Training renders conversations with the template as it is: its `{% generation %}` markers give
TRL the assistant tokens, so that the loss covers each response and its end-of-text token and
nothing else. The markers are an extension of transformers' renderer, so the tokenizer that is
published (checkpoints and final model) carries the same template without them: vLLM,
llama.cpp and plain Jinja render it.

Limit: the prompt and the response are tokenized as one text. With byte-level BPE the boundary
after "### Response\\n" is a token boundary unless the response starts with a newline, which
then merges with the prompt's into one token that counts as the response's.
"""

from __future__ import annotations

import re
from pathlib import Path

TEMPLATE_FILE = Path(__file__).with_name("chat_template.jinja")
_MARKERS = re.compile(r"\{%-?\s*(?:end)?generation\s*-?%\}\n?")
_COMMENTS = re.compile(r"\{#.*?#\}\n?", re.DOTALL)


def training_template() -> str:
    return TEMPLATE_FILE.read_text()


def inference_template() -> str:
    """The template without its generation markers and comments (it renders the same text)."""
    return _COMMENTS.sub("", _MARKERS.sub("", training_template()))
