"""Writing a recipe back out: plain dicts and the YAML text saved in run dirs and checkpoints."""

from __future__ import annotations

import dataclasses
from typing import Any

import yaml

from cltt.recipe.method_section import MethodConfig
from cltt.recipe.probe_section import chosen_sections
from cltt.recipe.schema import Recipe


def recipe_to_dict(recipe: Recipe) -> dict[str, Any]:
    """The recipe as plain nested dicts and lists (YAML- and JSON-ready); of the method
    sections only the chosen method's own, of the probe sections only the chosen task's and readouts'."""
    tree = dataclasses.asdict(recipe)
    method = tree["method"]
    shared = {f.name for f in dataclasses.fields(MethodConfig)}
    tree["method"] = {key: value for key, value in method.items() if key in shared or key == method["name"]}
    tree["probe"] = chosen_sections(tree["probe"])
    return tree


class _RecipeDumper(yaml.SafeDumper):
    """Sections as blocks (one key per line), lists inline: ``crop_scale: [0.2, 1.0]``."""


_RecipeDumper.add_representer(
    list, lambda dumper, items: dumper.represent_sequence("tag:yaml.org,2002:seq", items, flow_style=True)
)


def dump_recipe(recipe: Recipe) -> str:
    """The resolved recipe as YAML text, every key present."""
    return yaml.dump(recipe_to_dict(recipe), Dumper=_RecipeDumper, sort_keys=False, default_flow_style=False)
