"""Prompt templates and the few-shot library, as data files in `prompts/` beside this module.

- `templates/<task>.yaml`: the words of each prompt (`preamble`, `query` and `answer`, format
  strings whose `{fields}` are filled in; `chat_preamble` and `chat_query`, the system turn
  and the user turns in chat mode, where they differ), for
  the tasks judge, concepts, instructions and responses.
- `fewshot/*.yaml`: our own worked examples; each has a seed snippet, its concepts, a property
  (category, language, difficulty), an instruction, and a response in four parts whose
  implementation passes its own tests.
- `judge_examples.yaml`: functions with the judge's Yes or No.
- `properties.yaml`: the categories, languages and difficulties instructions are drawn from.

`library_digest()` hashes all of it: it is part of every generation stage's fingerprint, so
editing an example makes the stages that use it stale.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import yaml

from builder.errors import BuilderError

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
TASKS = ("judge", "concepts", "instructions", "responses")


@dataclass(frozen=True)
class Template:
    preamble: str
    query: str
    answer: str
    chat_preamble: str = ""  # chat mode's system turn; the preamble where a file has none
    chat_query: str = ""  # chat mode's user turn; the query where a file has none


@dataclass(frozen=True)
class FewshotExample:
    name: str  # the file's stem
    snippet: str
    concepts: tuple[str, ...]
    category: str
    language: str
    difficulty: str
    instruction: str
    reasoning: str
    implementation: str
    explanation: str
    tests: str


@dataclass(frozen=True)
class JudgeExample:
    function: str
    answer: str  # "Yes" or "No"


@dataclass(frozen=True)
class Properties:
    categories: tuple[str, ...]
    languages: tuple[str, ...]
    difficulties: tuple[str, ...]


def _load(path: Path, keys: tuple[str, ...]) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise BuilderError(f"prompt file {path}: {str(err).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise BuilderError(f"prompt file {path}: expected a mapping")
    missing = [k for k in keys if k not in data]
    if missing:
        raise BuilderError(f"prompt file {path}: missing key '{missing[0]}'")
    return data


@functools.cache
def template(task: str) -> Template:
    data = _load(PROMPTS_DIR / "templates" / f"{task}.yaml", ("preamble", "query", "answer"))
    preamble = data["preamble"].strip()
    query = data["query"].rstrip()
    chat = str(data.get("chat_preamble") or preamble).strip()
    chat_query = str(data.get("chat_query") or query).rstrip()
    return Template(preamble, query, data["answer"].strip(), chat, chat_query)


_EXAMPLE_KEYS = (
    "snippet",
    "concepts",
    "property",
    "instruction",
    "reasoning",
    "implementation",
    "explanation",
    "tests",
)


@functools.cache
def fewshot_examples() -> tuple[FewshotExample, ...]:
    examples = []
    for path in sorted((PROMPTS_DIR / "fewshot").glob("*.yaml")):
        data = _load(path, _EXAMPLE_KEYS)
        prop = data["property"]
        if not isinstance(prop, dict) or {"category", "language", "difficulty"} - prop.keys():
            raise BuilderError(f"prompt file {path}: property needs category, language, difficulty")
        examples.append(
            FewshotExample(
                name=path.stem,
                snippet=data["snippet"].rstrip(),
                concepts=tuple(str(c).strip() for c in data["concepts"]),
                category=prop["category"],
                language=prop["language"],
                difficulty=prop["difficulty"],
                **{
                    k: data[k].strip()
                    for k in ("instruction", "reasoning", "implementation", "explanation", "tests")
                },
            )
        )
    return tuple(examples)


@functools.cache
def judge_examples() -> tuple[JudgeExample, ...]:
    data = _load(PROMPTS_DIR / "judge_examples.yaml", ("examples",))
    examples = tuple(
        JudgeExample(e["function"].rstrip(), e["answer"].strip()) for e in data["examples"]
    )
    bad = [e.answer for e in examples if e.answer not in ("Yes", "No")]
    if bad:
        raise BuilderError(f"judge_examples.yaml: answer must be Yes or No, got '{bad[0]}'")
    return examples


@functools.cache
def properties() -> Properties:
    data = _load(PROMPTS_DIR / "properties.yaml", ("categories", "languages", "difficulties"))
    return Properties(*(tuple(data[k]) for k in ("categories", "languages", "difficulties")))


@functools.cache
def library_digest() -> str:
    """A hash of every prompt file (names and contents)."""
    digest = hashlib.sha256()
    for path in sorted(PROMPTS_DIR.rglob("*.yaml")):
        digest.update(f"{path.relative_to(PROMPTS_DIR)}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
