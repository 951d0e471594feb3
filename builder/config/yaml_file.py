"""Reading a recipe file safely: its text, its YAML, and how errors quote its values.

YAML as PyYAML reads it lets the last of two equal keys win and lets aliases expand a small
file into a huge value; a recipe must do neither. A duplicate key is an error naming the key,
its line and the file; a document whose values, aliases expanded, hold more than
`MAX_VALUES` scalars and collections is refused before anything walks it. Error messages quote
at most a short prefix of any value.
"""

from __future__ import annotations

import reprlib
from pathlib import Path
from typing import Any

import yaml

from builder.errors import RecipeError

MAX_VALUES = 100_000  # far more than any recipe needs; an alias bomb has billions
_SHORT = reprlib.Repr()  # keyword arguments only from Python 3.12
_SHORT.maxlevel, _SHORT.maxdict, _SHORT.maxlist = 3, 6, 6
_SHORT.maxstring = _SHORT.maxother = 60


def short(value: Any) -> str:
    """`repr(value)`, cut short (nested and long values are elided with '...')."""
    return _SHORT.repr(value)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys in a mapping."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict:
    loader.flatten_mapping(node)  # merge keys (<<) become ordinary pairs first
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise RecipeError(
                f"duplicate key {short(key)} on line {line} (first on line {seen[key]})"
            )
        seen[key] = line
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def read_recipe_yaml(path: Path) -> Any:
    """The recipe file's data; one-line RecipeError naming the file for any problem."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise RecipeError(f"{path}: not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise RecipeError(f"{path}: cannot read: {err.strerror}") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506  # a SafeLoader subclass
    except RecipeError as err:
        raise RecipeError(f"{path}: {err}") from None
    except yaml.YAMLError as err:
        raise RecipeError(f"{path}: not valid YAML: {str(err).splitlines()[0]}") from None
    check_size(data, path)
    return data


def check_size(data: Any, path: Path) -> None:
    """Count values as a walk would see them, stopping at MAX_VALUES (aliases make shared
    nodes, which a walk visits once per reference)."""
    count, stack = 0, [data]
    while stack:
        value = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise RecipeError(
                f"{path}: more than {MAX_VALUES:,} values once aliases are expanded: refused"
            )
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
