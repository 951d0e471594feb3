"""The machinery every config uses, at the bottom of the package: typed dataclass fields with
ranges (`fields.py`) and strict, size-checked YAML (`yaml_file.py`). Each component's config
lives beside the component (`engines/config.py`, `sandbox/config.py`,
`pipeline/executors/config.py`); `pipeline/recipe.py` gathers them into a recipe."""
