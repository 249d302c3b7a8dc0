"""Command-line overrides ``key.sub=value`` applied to a recipe's tree before it is built."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any, Sequence

import yaml

from cltt.errors import RecipeError


class SpelledInt(int):
    """A YAML integer whose text is not how Python prints it (``010`` is 8, ``1:30`` is 90,
    ``0x1F`` is 31): a number for a number key, its ``text`` for a string key."""

    text = ""


class SpelledFloat(float):
    """A YAML float whose text is not how Python prints it (``1.10`` is 1.1, ``.5`` is 0.5)."""

    text = ""


def spelled(value: Any, text: str) -> Any:
    """``value`` as YAML parsed ``text``, keeping ``text`` where a string key would lose it: a
    number printed otherwise becomes a :class:`SpelledInt` or :class:`SpelledFloat`, a date (no
    recipe key is one) its text. Without this ``data.root=010`` was the folder '8' and
    ``train.name=1.10`` the run '1.1'."""
    if isinstance(value, datetime.date):
        return text
    if isinstance(value, bool) or not isinstance(value, (int, float)) or str(value) == text:
        return value
    out = SpelledInt(value) if isinstance(value, int) else SpelledFloat(value)
    out.text = text
    return out


def plain(value: Any, key: str = "", _inside: frozenset = frozenset()) -> Any:
    """``value`` with every :class:`SpelledInt`/:class:`SpelledFloat` inside made a plain number;
    a value that contains itself (a YAML alias inside its own anchor, ``&a {x: *a}``) is one
    :class:`RecipeError` naming ``key``, not a RecursionError when the recipe is copied or saved."""
    if isinstance(value, SpelledInt):
        return int(value)
    if isinstance(value, SpelledFloat):
        return float(value)
    if isinstance(value, (dict, list)):
        if id(value) in _inside:
            raise RecipeError(f"recipe key '{key}' holds a value that contains itself (a YAML alias inside its own "
                              "anchor); write the value out")
        inside = _inside | {id(value)}
        if isinstance(value, dict):
            return {plain(k, key, inside): plain(v, key, inside) for k, v in value.items()}
        return [plain(v, key, inside) for v in value]
    return value


def apply_overrides(tree: dict[str, Any], overrides: Sequence[str]) -> None:
    """Apply ``key=value`` overrides in order (:func:`apply_override`), then refuse a ``data.root``
    set here that does not exist while ``data.synthetic`` comes from the recipe: built-in data
    are written only at the recipe's own ``data.root``, so a mistyped root given on the command
    line (or a copied quickstart pointed at the user's frames) never trains on synthetic frames.
    """
    data = tree.get("data")
    own_root = data.get("root") if isinstance(data, dict) else None
    keys = set()
    for override in overrides:
        apply_override(tree, override)
        keys.add(override.partition("=")[0].strip())
    data = tree.get("data")
    if "data.root" not in keys or "data.synthetic" in keys or not isinstance(data, dict) or not data.get("synthetic"):
        return
    root = data.get("root")
    root = getattr(root, "text", root)
    if root is not None and not Path(str(root)).exists():
        own = f" ({own_root})" if own_root is not None else ""
        raise RecipeError(f"data.root {root} does not exist; the recipe's data.synthetic={data['synthetic']} writes built-in "
                          f"data only at its own data.root{own}: fix the path, or add data.synthetic=null to use your own frames")


def apply_override(tree: dict[str, Any], override: str) -> None:
    """Set ``a.b.c=value`` in a nested dict, the value parsed as a YAML scalar."""
    key, sep, raw = override.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise RecipeError(f"override '{override}' must look like section.key=value, e.g. train.epochs=5")
    try:
        value = spelled(yaml.safe_load(raw), raw.strip()) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    set_dotted(tree, key, value)


def set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    """``tree[a][b][c] = value`` for ``key = "a.b.c"``, creating mappings on the way (an empty
    section becomes one); a section that holds something else is an error, never replaced."""
    node = tree
    parts = key.split(".")
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            section = ".".join(parts[:depth + 1])
            raise RecipeError(f"recipe key '{section}' must be a mapping of keys, got {child!r}; "
                              f"fix it in the recipe (the override {key}=... sets a key inside it)")
        node = child
    node[parts[-1]] = value
