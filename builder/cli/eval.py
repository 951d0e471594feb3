"""`builder eval`: grade samples, or, with `--model`, run the `eval` step (generate, grade and
publish through the one publisher) on a recipe of that one step. Cheap to import: everything
heavy is imported by the handler."""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger("builder.eval")

# The flags that are `EvalParams` fields: the flag is the field's name with dashes, its type
# and default are the field's (`--benchmarks` takes a comma-separated list, a bool field is a
# switch). Here only which group each is in and its help; a field in neither this nor
# NOT_FLAGS fails a test, so a new setting of the step is never missing from the command.
FLAGS = {
    "grading (EvalPlus's options, same defaults)": {
        "sandbox": "sandbox backend (default: local)",
        "workers": "programs at once (default: one per CPU)",
        "cache_dir": "ground truth and completions",
        "test_details": "check every input (no fast check)",
        "min_time_limit": "seconds, at least, per test",
        "gt_time_limit_factor": "times the ground truth's time, per test",
        "base_only": "only the base tests",
        "run_plus_after_base_fail": "also run plus tests of samples that failed base "
        "(scores unchanged)",
        "fix_find_zero": "grade HumanEval/32 as EvalPlus after 0.3.1 (0.3.1 fails every solution)",
    },
    "LiveCodeBench problems": {
        "lcb_release": "release_v1 .. release_v6 or release_latest (data folder)",
        "start_date": "first contest date, YYYY-MM-DD",
        "end_date": "last contest date, YYYY-MM-DD",
    },
    "generation (with --model)": {
        "benchmarks": "comma-separated",
        "revision": "the model's revision",
        "engine": "engine backend (transformers, vllm, openai; default: transformers)",
        "n_samples": "samples per task (pass@k)",
        "temperature": "0: greedy",
        "top_p": "nucleus sampling",
        "max_tokens": "per sample",
        "seed": "of sample 0 (sample i: seed + i)",
        "template": "prompt template (prompts/instruct.yaml), or `chat`: the model's own chat "
        "template (default: sc2-instruct)",
        "batch_size": "transformers engine batch size",
        "limit": "only the first N tasks of each benchmark",
        "checkpoints": "a model repository of the store: also every checkpoint branch of it",
    },
    "publishing (with --model)": {
        "repo": "results dataset (default: <namespace>/<model name>-eval)",
    },
}
# Fields with a flag of another shape (`--model`, `--data-file`) or none: `input` and
# `chunk_size` are a recipe's, `baseline` compares with a recipe's base model.
NOT_FLAGS = {"model", "data_files", "input", "chunk_size", "baseline"}


def register(subparsers) -> None:
    cmd = subparsers.add_parser(
        "eval", help="grade samples, or a model, on HumanEval+, MBPP+, DS-1000, LiveCodeBench",
        description="Grade samples in the sandbox with EvalPlus's verdicts, or generate them "
        "with a model first and publish the results as a dataset.",
    )  # fmt: skip
    source = cmd.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--samples", metavar="FILE.jsonl", help="samples: task_id + solution|completion"
    )
    source.add_argument("--model", help="a model (Hub id or local folder) to generate with")
    cmd.add_argument(
        "--benchmark", help="with --samples: humaneval+, mbpp+, ds-1000, livecodebench"
    )
    cmd.add_argument(
        "--data-file", help="the benchmark in EvalPlus's jsonl(.gz) format (default: pinned copy)"
    )
    cmd.add_argument("--results", metavar="OUT.json", help="write {task_id: {base, plus}} verdicts")
    groups = {title: cmd.add_argument_group(title) for title in FLAGS}
    for title, helps in FLAGS.items():
        add_field_flags(groups[title], helps)
    pub = groups["publishing (with --model)"]  # the store's own flags beside `--repo`
    pub.add_argument("--store", default="local:.builder/store", help="'hf' or 'local:DIR'")
    pub.add_argument("--public", action="store_true")
    pub.add_argument("--no-publish", action="store_true")
    cmd.set_defaults(handler=_cmd_eval)


def add_field_flags(group, helps: dict[str, str]) -> None:
    """One flag per `EvalParams` field named in `helps`, typed and defaulted by the field."""
    import dataclasses
    import types
    import typing

    from builder.stages.eval_params import EvalParams

    hints = typing.get_type_hints(EvalParams)
    fields = {f.name: f for f in dataclasses.fields(EvalParams)}
    for name, text in helps.items():
        f, hint = fields[name], hints[name]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        flag = "--" + name.replace("_", "-")
        if hint is bool:
            group.add_argument(flag, action="store_true", help=text)
            continue
        if isinstance(hint, types.UnionType):  # `X | None`: the X
            (hint,) = [a for a in typing.get_args(hint) if a is not type(None)]
        kind = _comma_list if typing.get_origin(hint) is list else hint
        shown = ",".join(default) if isinstance(default, list) else default
        group.add_argument(flag, type=kind, default=default, help=f"{text} (default: {shown})"
                           if shown is not None and "default:" not in text else text)  # fmt: skip


def _comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _setup(args):
    from builder.evaluation.benchmarks import GradingSetup
    from builder.evaluation.evalplus_grader import GradeOptions
    from builder.sandbox.config import SandboxConfig

    options = GradeOptions(
        fast_check=not args.test_details, min_time_limit=args.min_time_limit,
        gt_time_limit_factor=args.gt_time_limit_factor, base_only=args.base_only,
        skip_plus_on_base_fail=not args.run_plus_after_base_fail, fix_find_zero=args.fix_find_zero,
    )  # fmt: skip
    backend = args.sandbox or SandboxConfig().backend
    return GradingSetup(backend, args.workers, Path(args.cache_dir).expanduser(), options)


def _selection(args):
    from builder.evaluation.benchmarks import Selection

    return Selection(args.lcb_release, args.start_date, args.end_date)


def _cmd_eval(args) -> int:
    from builder.errors import BuilderError

    setup = _setup(args)
    if args.samples:
        if not args.benchmark:
            raise BuilderError(
                "--samples needs --benchmark (humaneval+, mbpp+, ds-1000, livecodebench)"
            )
        from builder.evaluation.run import grade_samples_file

        results = [
            grade_samples_file(
                args.samples, args.benchmark, args.data_file, setup, _selection(args)
            )
        ]
    else:
        results = _evaluate_model(args)
    for result in results:
        print(result.format())
    if args.results:
        table = {r.benchmark: r.verdict_table() for r in results}
        out = table[results[0].benchmark] if len(results) == 1 else table
        Path(args.results).write_text(json.dumps(out, indent=1))
        log.info("wrote per-task verdicts to %s", args.results)
    return 0


def _evaluate_model(args):
    """The `eval` step with the command's options, as a recipe of that one step."""
    from builder.config.fields import out_of_range
    from builder.errors import BuilderError
    from builder.pipeline.recipe import HubConfig, Recipe
    from builder.pipeline.step_runner import plan_step, run_step
    from builder.stages.eval_params import EvalParams
    from builder.store import open_store, split_ref

    model, revision = args.model, args.revision
    if "@" in model and not Path(model).exists():  # REPO@REVISION, e.g. a checkpoint's branch
        model, revision = split_ref(model)
        if args.revision and args.revision != revision:
            raise BuilderError(f"--model {args.model} and --revision {args.revision} disagree")
    benchmarks = args.benchmarks
    if args.data_file and len(benchmarks) > 1:
        raise BuilderError("--data-file goes with a single benchmark")
    flags = {name: getattr(args, name) for helps in FLAGS.values() for name in helps}
    params = EvalParams(
        **{**flags, "revision": revision}, model=model,
        data_files={benchmarks[0]: args.data_file} if args.data_file else {},
    )  # fmt: skip
    for name, problem in out_of_range(params):
        raise BuilderError(f"--{name.replace('_', '-')} {problem}")
    recipe = Recipe(
        name=Path(model.rstrip("/")).name.removesuffix(".gguf"), model=model,
        path="(builder eval)",
        hub=HubConfig(store=args.store, private=not args.public), stages={"eval": params},
    )  # fmt: skip
    plan = plan_step(recipe, "eval", open_store(args.store))
    if args.no_publish:
        import tempfile

        from builder.pipeline.step import StepRun

        with tempfile.TemporaryDirectory(prefix="builder-eval-") as tmp:
            plan.step.run(StepRun(plan.source, Path(tmp), Path(tmp)))
        return plan.step.results
    revision = run_step(plan, recipe)
    if not plan.step.results:  # up to date: the published revision has these scores
        log.info("%s@%s already holds this evaluation", plan.repo, revision)
    return plan.step.results
