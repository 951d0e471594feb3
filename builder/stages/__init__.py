"""The pipeline's steps, each beside its own helpers, in the order data flows:

- `extract.py`: top-level functions with a docstring, from a corpus;
- `seeds/`: `filter` (static rules), `imports` (import inference), `typecheck` (Pyright);
- `decontaminate/`: benchmark matching, with the benchmark files it ships;
- `dedup/`: MinHash near-duplicate removal;
- `generation/`: `judge`, `concepts`, `instructions`, `responses`, with their prompts, few-shot
  library and parsers;
- `execute/`: running each response's tests in a sandbox, with its verdict cache;
- `select/`: one passing response per instruction, as SFT pairs;
- `evaluate.py`: the `eval` step (HumanEval+, MBPP+, DS-1000, LiveCodeBench).

Recipe names map to classes in `builder.registry.STEPS`.
"""
