"""`builder eval`: grade samples, or, with `--model`, run the `eval` step (generate, grade and
publish through the one publisher) on a recipe of that one step. Cheap to import: everything
heavy is imported by the handler."""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger("builder.eval")

DEFAULT_CACHE = "~/.cache/code-instruct-builder/eval"  # the eval step's default too


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
        "--benchmarks", default="humaneval+,mbpp+", help="with --model (comma-separated)"
    )
    cmd.add_argument(
        "--data-file", help="the benchmark in EvalPlus's jsonl(.gz) format (default: pinned copy)"
    )
    cmd.add_argument("--results", metavar="OUT.json", help="write {task_id: {base, plus}} verdicts")
    lcb = cmd.add_argument_group("LiveCodeBench problems")
    lcb.add_argument(
        "--lcb-release", help="release_v1 .. release_v6 or release_latest (data folder)"
    )
    lcb.add_argument("--start-date", help="first contest date, YYYY-MM-DD")
    lcb.add_argument("--end-date", help="last contest date, YYYY-MM-DD")
    grading = cmd.add_argument_group("grading (EvalPlus's options, same defaults)")
    grading.add_argument("--sandbox", default="local", help="sandbox backend (default: local)")
    grading.add_argument("--workers", type=int, help="programs at once (default: one per CPU)")
    grading.add_argument("--cache-dir", default=DEFAULT_CACHE, help="ground truth and completions")
    grading.add_argument(
        "--test-details", action="store_true", help="check every input (no fast check)"
    )
    grading.add_argument("--min-time-limit", type=float, default=1.0)
    grading.add_argument("--gt-time-limit-factor", type=float, default=4.0)
    grading.add_argument("--base-only", action="store_true")
    grading.add_argument(
        "--run-plus-after-base-fail",
        action="store_true",
        help="also run plus tests of samples that failed base (scores unchanged)",
    )
    grading.add_argument(
        "--fix-find-zero",
        action="store_true",
        help="grade HumanEval/32 as EvalPlus after 0.3.1 (0.3.1 fails every solution)",
    )
    gen = cmd.add_argument_group("generation (with --model)")
    gen.add_argument("--revision", help="the model's revision")
    gen.add_argument(
        "--engine", default="transformers", help="engine backend (transformers, vllm, openai)"
    )
    gen.add_argument("--n-samples", type=int, default=1, help="samples per task (pass@k)")
    gen.add_argument("--temperature", type=float, default=0.0, help="0: greedy")
    gen.add_argument("--top-p", type=float, default=1.0)
    gen.add_argument("--max-tokens", type=int, default=512)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument(
        "--template",
        default="sc2-instruct",
        help="prompt template (prompts/instruct.yaml), or `chat`: the model's own chat template",
    )
    gen.add_argument("--batch-size", type=int, default=8, help="transformers engine batch size")
    gen.add_argument("--limit", type=int, help="only the first N tasks of each benchmark")
    pub = cmd.add_argument_group("publishing (with --model)")
    pub.add_argument("--store", default="local:.builder/store", help="'hf' or 'local:DIR'")
    pub.add_argument("--repo", help="results dataset (default: <namespace>/<model name>-eval)")
    pub.add_argument("--public", action="store_true")
    pub.add_argument("--no-publish", action="store_true")
    cmd.set_defaults(handler=_cmd_eval)


def _setup(args):
    from builder.evaluation.evalplus_grader import GradeOptions
    from builder.evaluation.run import GradingSetup

    options = GradeOptions(
        fast_check=not args.test_details, min_time_limit=args.min_time_limit,
        gt_time_limit_factor=args.gt_time_limit_factor, base_only=args.base_only,
        skip_plus_on_base_fail=not args.run_plus_after_base_fail, fix_find_zero=args.fix_find_zero,
    )  # fmt: skip
    return GradingSetup(args.sandbox, args.workers, Path(args.cache_dir).expanduser(), options)


def _selection(args):
    from builder.evaluation.run import Selection

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
    from builder.pipeline.runner import plan_step, run_step
    from builder.stages.evaluate import EvalParams
    from builder.store import open_store, split_ref

    model, revision = args.model, args.revision
    if "@" in model and not Path(model).exists():  # REPO@REVISION, e.g. a checkpoint's branch
        model, revision = split_ref(model)
        if args.revision and args.revision != revision:
            raise BuilderError(f"--model {args.model} and --revision {args.revision} disagree")
    benchmarks = [b.strip() for b in args.benchmarks.split(",") if b.strip()]
    if args.data_file and len(benchmarks) > 1:
        raise BuilderError("--data-file goes with a single benchmark")
    params = EvalParams(
        model=model, revision=revision, benchmarks=benchmarks,
        data_files={benchmarks[0]: args.data_file} if args.data_file else {},
        lcb_release=args.lcb_release, start_date=args.start_date, end_date=args.end_date,
        n_samples=args.n_samples, temperature=args.temperature, top_p=args.top_p,
        max_tokens=args.max_tokens, seed=args.seed, template=args.template,
        test_details=args.test_details, min_time_limit=args.min_time_limit,
        gt_time_limit_factor=args.gt_time_limit_factor, base_only=args.base_only,
        run_plus_after_base_fail=args.run_plus_after_base_fail, fix_find_zero=args.fix_find_zero,
        sandbox=args.sandbox, engine=args.engine, batch_size=args.batch_size,
        workers=args.workers, cache_dir=args.cache_dir, repo=args.repo, limit=args.limit,
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
