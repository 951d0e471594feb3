"""Where a recipe's steps publish and what they are told of the recipe: the namespace, each
step's repository name, its `StepContext` and the work directory."""

from __future__ import annotations

from pathlib import Path

from builder.pipeline.recipe import Recipe
from builder.pipeline.step import StepContext
from builder.registry import STEPS
from builder.store import Store

_namespaces: dict[str, str] = {}


def namespace_of(recipe: Recipe, store: Store) -> str:
    """The recipe's namespace: `hub.namespace`, else the store's default (on the Hub, the
    token's user: asked once per process)."""
    if recipe.hub.namespace:
        return recipe.hub.namespace
    if store.uri not in _namespaces:
        _namespaces[store.uri] = store.default_namespace()
    return _namespaces[store.uri]


def work_root(recipe: Recipe) -> Path:
    return Path(recipe.work_dir or ".builder/work").expanduser()


def step_context(recipe: Recipe, store: Store) -> StepContext:
    return StepContext(
        recipe_name=recipe.name,
        model=recipe.model,
        model_origin=recipe.model_origin,
        prompting=recipe.prompting,
        engine=recipe.engine,
        sandbox=recipe.sandbox,
        work_dir=str(work_root(recipe)),
        store=recipe.hub.store,
        namespace=namespace_of(recipe, store),
    )


def repo_for(recipe: Recipe, name: str, store: Store) -> str:
    """The repository of step `name`: `<namespace>/<recipe>-<step>`, unless the step names one."""
    step = STEPS.load(name)(recipe.stages[name], step_context(recipe, store))
    return step.repo_name() or f"{namespace_of(recipe, store)}/{recipe.name}-{name}"
