"""Helpers of the seed-curation stages (`filter`, `imports`, `typecheck`).

The stage modules under `builder/stages/` stay small and declarative; the work they delegate
lives here: the static rules of `filter` (`function_rules`), import inference in a killable child
process (`import_inference`), and Pyright, both as a one-shot command line run and as a warm
language server (`pyright_setup`, `pyright_server`).
"""
