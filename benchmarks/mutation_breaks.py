"""The hand-made breaks of issue 17: each a guarantee users rely on, broken the way a plausible
bug would break it, with the tests meant to catch it (`python benchmarks/mutation.py breaks`).

Each entry: (name, module, text to replace (once in the module), replacement, tests).
"""

RESUME = "tests/test_resume.py"
EXECUTE = "tests/test_execute.py"
WITNESS = "tests/test_generation_witness.py"

BREAKS = [
    (
        # 1. The done chunks are counted as reused (the log line is right) but run again.
        "resume redoes every finished chunk",
        "builder/pipeline/rows.py",
        "                _remove_spooled(task, checkpoint.folder)\n                continue\n",
        "                _remove_spooled(task, checkpoint.folder)\n",
        [RESUME, "tests/test_reliability.py"],
    ),
    (
        # 2. Cache counts worked out before running, then every program run again (the cache's
        # INSERT OR REPLACE hides it).
        "execute runs cached programs again",
        "builder/stages/execute/sandbox_stage.py",
        "        self._run(sandbox, cache, missing, found)\n",
        "        self._run(sandbox, cache, {k: p for k, p in zip(keys, programs) if k}, found)\n",
        [EXECUTE, WITNESS],
    ),
    (
        # 2b. The same for the engines: cached samples asked for again, counted as hits.
        "generation asks the engine for cached samples again",
        "builder/engines/generator.py",
        "            counts.hits += len(cached)\n",
        (
            "            counts.hits += len(cached)\n"
            "            for index in cached:\n"
            "                requests.append(Request(p.prompt, sampling, p.seed, 1, index))\n"
            "                owners.append((i, key))\n"
        ),
        [WITNESS, "tests/test_generation_stages.py", "tests/test_eval_cli.py"],
    ),
    (
        # 3. The sandbox takes any report that says "finished".
        "the sandbox stops checking its report's nonce",
        "builder/sandbox/_worker.py",
        'report.get("nonce") == nonce and ',
        "",
        ["tests/test_sandbox_local.py::test_forged_report_never_passes"],
    ),
    (
        # 4. The branch moves (a plain write) before the commit record is written.
        "the local store moves the branch before writing the commit record",
        "builder/store/local.py",
        (
            "            commit_id = self.write_commit(path, head, message, description, tree)\n"
            '            write_atomic(path / "refs/heads" / branch, commit_id)\n'
        ),
        (
            "            import builder.store.local_records as records\n"
            "\n"
            "            real, ref = records.write_atomic, path / 'refs/heads' / branch\n"
            "\n"
            "            def ref_first(target, content, mode=None):\n"
            "                if target.parent.name == 'commits':\n"
            "                    ref.write_text(target.stem)\n"
            "                real(target, content, mode)\n"
            "\n"
            "            records.write_atomic = ref_first\n"
            "            try:\n"
            "                commit_id = self.write_commit(path, head, message, description, tree)\n"
            "            finally:\n"
            "                records.write_atomic = real\n"
        ),
        ["tests/test_store_durability.py"],
    ),
    (
        # 5. A step's extra settings (model, sandbox, benchmark files) out of the fingerprint.
        "the fingerprint leaves out a stage's extra settings",
        "builder/pipeline/step_runner.py",
        '        "extra": step.fingerprint_extra(),\n',
        "",
        ["tests/test_staleness.py"],
    ),
    (
        # 6. A duplicate goes to the first kept candidate above the threshold.
        "dedup assigns a duplicate to the first candidate above the threshold",
        "builder/stages/dedup/index.py",
        "        best = int(np.argmax(similarity))",
        "        best = int(np.argmax(similarity >= self.threshold))",
        ["tests/test_dedup.py"],
    ),
    (
        # Weak spot: a DS-1000 grader that fails everything.
        "the DS-1000 grader fails everything",
        "builder/evaluation/ds1000.py",
        "DS1000Verdict(s.task_id, s.index, code, r.status, r.error)",
        'DS1000Verdict(s.task_id, s.index, code, "fail", r.error)',
        ["tests/test_eval_ds1000.py::test_eval_model_on_ds1000"],
    ),
]
