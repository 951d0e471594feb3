"""Executors: where a row stage's chunks run (`base.Executor`). `local` is this machine's
process pool, `ray` a Ray cluster's actors (`ray_executor.py`); backends are registered in
`builder.registry.EXECUTORS`."""
