"""Executors: where a row stage's chunks run (`base.Executor`). `local` is this machine's
process pool; backends are registered in `builder.registry.EXECUTORS`."""
