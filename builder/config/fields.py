"""Typed settings from YAML data: dataclasses built with strict keys, checked types and ranges.

Every field of a settings dataclass is a key; an unknown key, a value of the wrong type (YAML is
loose only where it is safe: an int for a float, a number for a string) or a number outside the
range its field declares (`bounded`, `runtime_only`) is a one-line RecipeError naming the dotted
key and the file. Errors quote at most a short prefix of a value.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable
from dataclasses import field
from pathlib import Path
from typing import Any

from builder.config.yaml_file import short
from builder.errors import RecipeError


def runtime_only(default: Any, **bounds: float) -> Any:
    """A parameter that changes how a step runs but not what it outputs (left out of its
    fingerprint, so changing it does not make a published revision stale)."""
    return bounded(default, runtime=True, **bounds)


def added_later(default: Any, **bounds: float) -> Any:
    """A parameter added after revisions were published without it: it enters the step's
    fingerprint only when set to something other than its default (which is what those
    revisions did), so they stay up to date. Numbers may declare a range, as `bounded`."""
    return bounded(default, fingerprint="unless_default", **bounds)


def bounded(
    default: Any,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    runtime: bool = False,
    fingerprint: bool | str = True,
) -> Any:
    """A numeric parameter with its valid range, checked when the recipe loads (None: no
    bound; a value of None is always allowed where the type allows it). `fingerprint`: see
    `StepParams.fingerprint_items` (`runtime` is `fingerprint=False`)."""
    metadata: dict[str, Any] = {"bounds": (ge, gt, le)}
    if runtime or fingerprint is not True:
        metadata["fingerprint"] = False if runtime else fingerprint
    return field(default=default, metadata=metadata)


def _bounds(cls: type, name: str) -> tuple:
    """A field's bounds, as declared by the class or by the base class that introduced it (a
    subclass that only changes a default keeps them)."""
    for klass in cls.__mro__:
        fields = getattr(klass, "__dataclass_fields__", {})
        if name in fields and "bounds" in fields[name].metadata:
            return fields[name].metadata["bounds"]
    return (None, None, None)


def out_of_range(obj: Any) -> list[tuple[str, str]]:
    """(field, problem) for each numeric field of dataclass `obj` that is not finite or is
    outside its declared bounds."""
    problems = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not math.isfinite(value):
            problems.append((f.name, f"must be a finite number, got {value}"))
            continue
        ge, gt, le = _bounds(type(obj), f.name)
        if ge is not None and value < ge:
            problems.append((f.name, f"must be >= {ge}, got {value}"))
        elif gt is not None and value <= gt:
            problems.append((f.name, f"must be > {gt}, got {value}"))
        elif le is not None and value > le:
            problems.append((f.name, f"must be <= {le}, got {value}"))
    return problems


def is_mapping(hint: Any) -> bool:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(is_mapping(h) for h in typing.get_args(hint) if h is not type(None))
    return hint is dict or typing.get_origin(hint) is dict


def mapping_values(hint: Any) -> Any:
    """The value type of a `dict[str, X]` hint (Any if it says none)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(h for h in typing.get_args(hint) if is_mapping(h))
    args = typing.get_args(hint)
    return args[1] if len(args) == 2 else Any


def build(
    cls: type,
    data: Any,
    prefix: str,
    path: Path,
    special: dict[str, Callable[[Any], Any]] | None = None,
    skip: tuple[str, ...] = (),
) -> Any:
    """Build dataclass `cls` from a mapping, naming the dotted key of any problem. `special`:
    fields built by their own function (a recipe's stages); `skip`: fields that are no keys."""
    where = prefix.rstrip(".") or "the top level"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: {where} must be a mapping")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in skip}
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise RecipeError(f"{path}: unknown key '{prefix}{key}'")
        if special and key in special:
            kwargs[key] = special[key](value)
        else:
            kwargs[key] = _convert(hints[key], value, f"{prefix}{key}", path)
    missing = [
        name
        for name, f in fields.items()
        if name not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise RecipeError(f"{path}: missing key '{prefix}{missing[0]}'")
    try:
        built = cls(**kwargs)
    except RecipeError as err:  # a parameter class's own check (e.g. a TRL option's name)
        raise RecipeError(f"{path}: {err}") from None
    for name, problem in out_of_range(built):
        raise RecipeError(f"{path}: '{prefix}{name}' {problem}")
    return built


def _convert(hint: Any, value: Any, key: str, path: Path) -> Any:
    """Check `value` against a type hint, converting where YAML is loose (int for float)."""
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            listed = " or ".join(repr(c) for c in choices)
            raise RecipeError(f"{path}: '{key}' must be {listed}, got {short(value)}")
        return value
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(option, value, key, path)
            except RecipeError:
                continue
        raise RecipeError(f"{path}: '{key}' must be {_describe(hint)}, got {short(value)}")
    if dataclasses.is_dataclass(hint):
        return build(hint, value, f"{key}.", path)
    if origin is list:
        if not isinstance(value, list):
            raise RecipeError(f"{path}: '{key}' must be a list, got {short(value)}")
        (item,) = typing.get_args(hint) or (Any,)
        return [_convert(item, v, f"{key}[{i}]", path) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise RecipeError(f"{path}: '{key}' must be a mapping, got {short(value)}")
        values = mapping_values(hint)
        if dataclasses.is_dataclass(values):
            return {k: build(values, v, f"{key}.{k}.", path) for k, v in value.items()}
        return dict(value)
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # `--set model=123` or a numeric tag is still a string key
    if hint in (int, float) and isinstance(value, bool):
        raise RecipeError(f"{path}: '{key}' must be {hint.__name__}, got {short(value)}")
    if isinstance(hint, type) and not isinstance(value, hint):
        raise RecipeError(f"{path}: '{key}' must be {hint.__name__}, got {short(value)}")
    return value


def _describe(hint: Any) -> str:
    names = [getattr(a, "__name__", str(a)) for a in typing.get_args(hint)]
    return " or ".join("null" if n == "NoneType" else n for n in names)
