"""`judge`: the base model decides whether a seed's docstring is good enough to keep it.

A few-shot prompt shows functions with a Yes or No verdict on one question: could the function
be re-implemented from its signature and docstring alone? The worked examples are drawn half Yes,
half No, shuffled per row (see `prompting.pick_balanced`). Two ways to read the model's verdict
(`scoring`):

- `answer` (the published run's way): greedy decoding, a few tokens, one line. Yes keeps the
  function; No drops it as `judge_no`; an answer that is neither drops it as `judge_unclear`.
- `calibrated`: the log-probabilities of Yes and No as the first token of the answer, compared
  after subtracting the same model's preference on the same prompt with the function replaced
  by "N/A" (contextual calibration, Zhao et al. 2021, "Calibrate Before Use"). A model that
  leans to one answer whatever it is shown (small models copy the worked examples' last or most
  frequent answer) then still separates the functions it finds better from those it finds
  worse. `judge_score` keeps the calibrated margin (log P(Yes) - log P(No), minus the prior's).
  Costs a second prompt per row, one token each (the shared prefix is cached by vLLM).

The raw answer is kept in `judge_answer` either way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from builder.engines.base import Sampling
from builder.engines.generator import PromptSpec
from builder.pipeline.rows import ChunkResult, Drop, Row
from builder.stages.generation.base import GenerationStage
from builder.stages.generation.library import judge_examples
from builder.stages.generation.params import GenerationParams
from builder.stages.generation.parse import parse_judge
from builder.stages.generation.prompting import JUDGE_STOP, judge_prompt

CONTENT_FREE = "N/A"  # what the calibration prompt shows in place of a function
TOP_LOGPROBS = 20  # first tokens looked at for Yes and No


@dataclass
class JudgeParams(GenerationParams):
    n: int = 1
    temperature: float = 0.0
    max_tokens: int = 8
    num_fewshots: int = 8
    scoring: Literal["answer", "calibrated"] = "answer"


class JudgeStage(GenerationStage):
    name = "judge"
    params_class = JudgeParams
    reads = ("id", "function")
    adds = ("judge_answer", "judge_verdict", "judge_score")
    description = "Seeds whose docstring the base model judges sufficient to re-implement them."

    stop = JUDGE_STOP
    params: JudgeParams

    def sampling(self) -> Sampling:
        if self.params.scoring == "calibrated":  # one token, and the likeliest first tokens
            return Sampling(0.0, 1.0, 1, self.stop, logprobs=TOP_LOGPROBS)
        return super().sampling()

    def _prompt(self, function: str, row_id: str) -> PromptSpec:
        k, rng = self.params.num_fewshots, self.row_rng(row_id)
        text = self.render(judge_prompt(function, judge_examples(), k, rng, self.chat))
        return PromptSpec(text, 1, self.row_seed(row_id))

    def process(self, rows: list[Row]) -> ChunkResult:
        prompts = [self._prompt(row["function"], row["id"]) for row in rows]
        calibrated = self.params.scoring == "calibrated"
        if calibrated:  # the same worked examples (same row seed), no function
            prompts += [self._prompt(CONTENT_FREE, row["id"]) for row in rows]
        results, stats = self.generate(prompts)
        priors = [r[0] for r in results[len(rows) :]] if calibrated else [None] * len(rows)
        result = ChunkResult(stats=stats)
        for row, (completion,), prior in zip(rows, results, priors):
            answer = completion.text.strip()
            out = {**row, "judge_answer": answer, "judge_verdict": None, "judge_score": None}
            if not completion.ok or (prior is not None and not prior.ok):
                failed = completion if not completion.ok else prior
                result.dropped.append(Drop(out, failed.error_kind or "engine_error", failed.error))
                continue
            if calibrated:
                verdict, score, detail = calibrated_verdict(completion, prior)
                out.update(judge_verdict=verdict, judge_score=score)
            else:
                parsed = parse_judge(completion.text)
                verdict, detail = parsed.value, (parsed.error, parsed.detail)
                out["judge_verdict"] = verdict
            if verdict == "yes":
                result.kept.append(out)
            elif verdict == "no":
                result.dropped.append(Drop(out, "judge_no", _no_detail(out["judge_score"])))
            else:
                result.dropped.append(Drop(out, *detail))
        return result

    def method_notes(self) -> str:
        if self.params.scoring == "calibrated":
            return (
                "Calibrated scoring: the first token's log-probabilities of Yes and No are "
                "compared, less the same model's preference on the same prompt with the function "
                f"replaced by \"{CONTENT_FREE}\" (contextual calibration). A positive margin "
                "keeps the seed, a negative one drops it as `judge_no`; `judge_score` holds the "
                "margin, `judge_answer` the greedy first token. Neither Yes nor No among the "
                f"{TOP_LOGPROBS} likeliest first tokens: `judge_unclear`."
            )
        return (
            "The judge answers one line; its first word decides: Yes keeps the seed, No drops "
            "it (`judge_no`), anything else drops it as `judge_unclear`. `judge_answer` holds "
            "the raw answer."
        )


def yes_no_margin(logprobs: dict[str, float] | None) -> float | None:
    """log P(Yes) - log P(No) over the first tokens that spell them (any case, with or
    without a leading space); a word missing from the list is given the list's lowest
    log-probability (an upper bound: it is less likely than anything listed). None when
    neither is there."""
    if not logprobs:
        return None
    words: dict[str, list[float]] = {"yes": [], "no": []}
    for token, value in logprobs.items():
        word = token.strip().strip(".,:;!\"'*").lower()
        if word in words:
            words[word].append(value)
    if not words["yes"] and not words["no"]:
        return None
    floor = min(logprobs.values())
    yes = _logsumexp(words["yes"]) if words["yes"] else floor
    no = _logsumexp(words["no"]) if words["no"] else floor
    return yes - no


def calibrated_verdict(completion, prior) -> tuple[str | None, float | None, tuple[str, str]]:
    """("yes" | "no" | None, calibrated margin, (reason, detail) when None)."""
    margin = yes_no_margin(completion.first_logprobs)
    baseline = yes_no_margin(prior.first_logprobs)
    if margin is None or baseline is None:
        shown = sorted((completion.first_logprobs or {}).items(), key=lambda kv: -kv[1])[:5]
        which = "the function's prompt" if margin is None else "the calibration prompt"
        detail = f"neither Yes nor No among the likeliest first tokens of {which}: {shown}"
        return None, None, ("judge_unclear", detail)
    score = round(margin - baseline, 4)
    return ("yes" if score > 0 else "no"), score, ("", "")


def _logsumexp(values: list[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def _no_detail(score: float | None) -> str:
    if score is None:
        return "the model answered No"
    return f"calibrated log-odds of Yes {score:+.2f} (No is likelier than on the N/A prompt)"
