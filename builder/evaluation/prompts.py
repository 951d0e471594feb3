"""Instruct-evaluation prompts from `prompts/instruct.yaml`: task -> text the model continues.

A completion is cut at its first code fence; the sample is `{"task_id", "completion"}` and is
graded, as EvalPlus grades such samples, as the task's prompt followed by the completion.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import yaml

from builder.errors import BuilderError

PROMPTS_FILE = Path(__file__).resolve().parent / "prompts" / "instruct.yaml"
FENCE = "```"


@dataclass(frozen=True)
class InstructPrompts:
    templates: dict[str, str]
    stop: tuple[str, ...]
    tasks: dict[str, dict[str, str]]  # dataset kind -> {"instruction", "response_prefix"}


@functools.cache
def load_prompts(path: Path = PROMPTS_FILE) -> InstructPrompts:
    data = yaml.safe_load(path.read_text())
    tasks = {k: v for k, v in data.items() if k not in ("templates", "stop")}
    return InstructPrompts(dict(data["templates"]), tuple(data["stop"]), tasks)


CHAT = "chat"  # the template name for the model's own chat template (`prompting: chat`)


def build_prompt(
    dataset: str, problem: dict, template: str = "sc2-instruct", tokenizer=None
) -> str:
    """The text the model continues for an EvalPlus problem (dataset: humaneval | mbpp)."""
    spec = load_prompts().tasks[dataset]
    fields = _fields(dataset, problem)
    return wrap(
        template,
        spec["instruction"].format(**fields),
        spec["response_prefix"].format(**fields),
        tokenizer,
    )


def wrap(template: str, instruction: str, response: str, tokenizer=None) -> str:
    """An instruction and the start of its response in the chat format `template`; `chat`:
    the tokenizer's own chat template, the instruction as the user's turn and the response
    prefix as the start of the assistant's."""
    if template == CHAT:
        if tokenizer is None:
            raise BuilderError("the `chat` prompt template needs the model's tokenizer")
        messages = [{"role": "user", "content": instruction}]
        opened = tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        return opened + response.lstrip("\n")
    prompts = load_prompts()
    if template not in prompts.templates:
        known = ", ".join(sorted(prompts.templates))
        raise BuilderError(f"unknown prompt template '{template}' (known: {known}, {CHAT})")
    return prompts.templates[template].format(instruction=instruction, response=response)


def _fields(dataset: str, problem: dict) -> dict[str, str]:
    prompt = problem["prompt"]
    if dataset == "humaneval":
        return {"prompt": prompt.strip()}
    # MBPP+: the prompt is a docstring with the task's sentence and (in releases) its first
    # assertion; this repository's v0.1.0 file keeps the assertions in an `assertion` field.
    quote = '"""' if '"""' in prompt else "'''"
    try:
        body = prompt[prompt.index(quote) + 3 : prompt.rindex(quote)]
    except ValueError:
        raise BuilderError(f"{problem['task_id']}: the prompt is not a docstring") from None
    cut = body.find("assert")
    if cut >= 0:
        description, assertion = body[:cut].strip(), body[cut:].strip()
    else:
        lines = [line for line in problem.get("assertion", "").splitlines() if line.strip()]
        if not lines:
            raise BuilderError(f"{problem['task_id']}: no assertion in the prompt or the row")
        description, assertion = body.strip(), lines[0].strip()
    if not description.endswith("."):
        description += "."
    return {"description": description, "assertion": assertion}


def completion_code(text: str) -> str:
    """The completion up to its first code fence (the closing one of the response prefix)."""
    index = text.find(FENCE)
    return text if index < 0 else text[:index]
