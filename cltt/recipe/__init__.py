"""The one YAML recipe format every subcommand reads.

A recipe is a YAML file with the sections below; every key has a typed default, so a recipe
names only what it changes. On the command line ``key.sub=value`` overrides one key, the value
parsed as a YAML scalar (``train.lr=3e-4``, ``data.augment.consistent=false``,
``method.name=simclr``). An unknown key, a wrong type or an out-of-range value is a
:class:`~cltt.errors.RecipeError` whose one line names the key, what was expected and, for an
unknown key, the closest valid one.

    recipe = load_recipe("recipes/quickstart.yaml", ["train.epochs=2"])
    recipe.data.window_size          # typed access
    print(dump_recipe(recipe))       # the resolved recipe, as saved in a run dir

Derived values (a scaled learning rate, the number of windows) are never written back here.

The package's modules, each with one job: :mod:`~cltt.recipe.schema` (the sections, with
:mod:`~cltt.recipe.data_sections`, :mod:`~cltt.recipe.method_section` and
:mod:`~cltt.recipe.probe_section`),
:mod:`~cltt.recipe.checks` (range checks), :mod:`~cltt.recipe.load`,
:mod:`~cltt.recipe.overrides` and :mod:`~cltt.recipe.dump`. Import from ``cltt.recipe``.
"""

from __future__ import annotations

from cltt.recipe.checks import check_min, check_pair, check_positive, check_probability, check_regex
from cltt.recipe.data_sections import DEFAULT_MAX_PIXELS, AugmentConfig, DataConfig, ExtractConfig, SyntheticConfig
from cltt.recipe.dump import dump_recipe, recipe_to_dict
from cltt.recipe.load import load_recipe, recipe_from_dict, without_weights_file
from cltt.recipe.method_section import LEGACY_METHOD_SECTIONS, MethodConfig, method_config_class
from cltt.recipe.overrides import apply_override, apply_overrides, set_dotted
from cltt.recipe.probe_section import LEGACY_PROBE_KEYS, ProbeConfig, probe_config_class
from cltt.recipe.schema import (
    FREEZE_CHOICES,
    ExportConfig,
    LogConfig,
    ModelConfig,
    ParamGroupConfig,
    Recipe,
    SlurmConfig,
    SweepConfig,
    TrainConfig,
    ViViTConfig,
    WandbConfig,
    all_keys,
)

__all__ = [
    "AugmentConfig",
    "DEFAULT_MAX_PIXELS",
    "DataConfig",
    "ExportConfig",
    "ExtractConfig",
    "FREEZE_CHOICES",
    "LEGACY_METHOD_SECTIONS",
    "LEGACY_PROBE_KEYS",
    "LogConfig",
    "MethodConfig",
    "ModelConfig",
    "ParamGroupConfig",
    "ProbeConfig",
    "Recipe",
    "SlurmConfig",
    "SweepConfig",
    "SyntheticConfig",
    "TrainConfig",
    "ViViTConfig",
    "WandbConfig",
    "all_keys",
    "apply_override",
    "apply_overrides",
    "check_min",
    "check_pair",
    "check_positive",
    "check_probability",
    "check_regex",
    "dump_recipe",
    "load_recipe",
    "method_config_class",
    "probe_config_class",
    "recipe_from_dict",
    "recipe_to_dict",
    "set_dotted",
    "without_weights_file",
]
