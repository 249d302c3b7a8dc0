"""Reading a recipe: YAML file (or dict) and overrides to a typed, validated :class:`Recipe`.

Every key is checked against its annotation; an unknown key is an error naming the closest
valid one, and each section's ``validate(at)`` runs once the whole tree is built.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from pathlib import Path
from typing import Any, Literal, Sequence

import yaml

from cltt.errors import RecipeError
from cltt.recipe.method_section import LEGACY_METHOD_SECTIONS, MethodConfig, concrete_schema, method_config_class
from cltt.recipe.overrides import apply_overrides, plain, spelled
from cltt.recipe.probe_section import ProbeConfig, upgrade_probe_tree
from cltt.recipe.schema import Recipe, all_keys


def load_recipe(path: str | Path | None = None, overrides: Sequence[str] = ()) -> Recipe:
    """Read a recipe file (or the defaults when ``path`` is None) and apply ``key=value`` overrides."""
    tree: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise RecipeError(f"recipe file {path} does not exist; pass a YAML file such as recipes/quickstart.yaml")
        try:
            loaded = yaml.load(path.read_text(), Loader=RecipeLoader)  # a SafeLoader: no Python tags
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise RecipeError(f"recipe file {path} is not valid YAML{where}: {getattr(err, 'problem', err)}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise RecipeError(f"recipe file {path} must hold a mapping of sections (data:, train:, ...)")
        tree = loaded
    apply_overrides(tree, overrides)
    return recipe_from_dict(tree)


class RecipeLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that refuses a key given twice in one mapping: PyYAML keeps the last
    one silently, so a second ``train:`` section dropped every key of the first. Merge keys
    (``<<: *base``) still override as YAML says."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                if not isinstance(key, typing.Hashable):
                    continue  # SafeLoader's own error names it
                if key in first:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} is given twice in one mapping (first at line {first[key] + 1}); "
                        "keep one", key_node.start_mark)
                first[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)

    def construct_spelled(self, node):
        """An int or float that keeps its text where Python prints it otherwise (:func:`spelled`)."""
        number = self.construct_yaml_int(node) if node.tag.endswith(":int") else self.construct_yaml_float(node)
        return spelled(number, node.value)


for _tag in ("int", "float", "timestamp"):
    RecipeLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", RecipeLoader.construct_spelled if _tag != "timestamp"
                                 else lambda loader, node: node.value)  # a date is its text: no recipe key is a date


def recipe_from_dict(tree: dict[str, Any]) -> Recipe:
    """Build a typed, validated :class:`Recipe` from a nested dict (missing keys take defaults)."""
    recipe = _build(Recipe, tree, "")
    _validate(recipe, "")
    return recipe


def without_weights_file(recipe: Recipe) -> Recipe:
    """``recipe`` with ``model.weights`` unset: for building a model whose weights come from a
    checkpoint (resume, probe, export), where the file named at training time may be gone."""
    return dataclasses.replace(recipe, model=dataclasses.replace(recipe.model, weights=None))


def _build(cls: type, tree: Any, at: str) -> Any:
    if tree is None:
        tree = {}
    if not isinstance(tree, dict):
        raise RecipeError(f"recipe key '{at.rstrip('.') or '<top>'}' must be a mapping of keys, got {tree!r}")
    cls = concrete_schema(cls)
    if issubclass(cls, MethodConfig):
        if "name" in tree:
            MethodConfig.entry_of(tree["name"], at.rstrip("."))  # an unknown method before its unknown section
        tree = {LEGACY_METHOD_SECTIONS.get(key, key): value for key, value in tree.items()}
        cls = method_config_class(tree)  # a section that only a plugin declares imports the plugins
    if issubclass(cls, ProbeConfig):
        if "task" in tree:
            ProbeConfig.task_of(tree["task"], at.rstrip("."))  # an unknown task before its unknown section
        tree = upgrade_probe_tree(tree)
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in tree:
        if key not in names:
            raise RecipeError(_unknown_key_message(f"{at}{key}"))
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in tree:
            values[f.name] = _coerce(tree[f.name], hints[f.name], f"{at}{f.name}")
    return cls(**values)


def _validate(node: Any, at: str) -> None:
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if dataclasses.is_dataclass(value):
            _validate(value, f"{at}{f.name}.")
    check = getattr(node, "validate", None)
    if check is not None:
        check(at.rstrip("."))


def _unknown_key_message(key: str) -> str:
    candidates = all_keys()
    parent = key.rpartition(".")[0]
    siblings = [k for k in candidates if k.rpartition(".")[0] == parent]
    close = difflib.get_close_matches(key, siblings, n=1, cutoff=0.5) or difflib.get_close_matches(
        key, candidates, n=1, cutoff=0.6
    )
    hint = f"; did you mean '{close[0]}'?" if close else f"; valid keys here: {', '.join(siblings)}"
    return f"recipe key '{key}' is not known{hint}"


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(c) for c in typing.get_args(tp))
    if origin is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return " or ".join(_type_name(a) for a in args) + " or null"
    if origin in (list, tuple):
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping of keys"
    return {int: "an int", float: "a number", bool: "true or false", str: "a string"}.get(tp, str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and return it in canonical form."""

    def wrong() -> RecipeError:
        return RecipeError(
            f"recipe key '{key}' must be {_type_name(tp)}, got {value!r} ({type(value).__name__})"
        )

    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key + ".")
    if origin is typing.Union:
        if value is None and type(None) in typing.get_args(tp):
            return None
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        for candidate in inner:
            try:
                return _coerce(value, candidate, key)
            except RecipeError:
                continue
        raise wrong()
    if origin is Literal:
        choices = typing.get_args(tp)
        if value in choices:
            return value
        close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=0.4)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise RecipeError(
            f"recipe key '{key}' must be one of {', '.join(str(c) for c in choices)}, got {value!r}{hint}"
        )
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise wrong()
        (item,) = typing.get_args(tp)
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise wrong()
        return plain(value, key)
    if tp is Any:
        return plain(value, key)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise wrong()
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise wrong()
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                raise wrong() from None
        raise wrong()
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return getattr(value, "text", str(value))  # 010 stays '010', not '8'
        raise wrong()
    raise TypeError(f"recipe schema uses an unsupported type {tp!r} at {key}")
