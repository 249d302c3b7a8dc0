"""The recipe section ``method``: the method's name, the keys methods share, and one
section ``method.<name>.*`` per registered method that declares one."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Optional

from cltt.errors import CLTTError, RecipeError
from cltt.recipe.checks import check_positive
from cltt.recipe.methods import MethodSection, find_method_section, method_sections
from cltt.recipe.probe_section import ProbeConfig, probe_config_class


@dataclass
class MethodConfig:
    """How a batch of samples becomes a loss: ``method.name`` and the keys methods share.

    ``name`` is any registered method (``cltt train --help`` lists them, each with one line);
    each method's own settings are its section ``method.<name>.*``, declared without torch in
    :mod:`cltt.recipe.methods`. The keys here are read by the methods that say so
    (``Method.shared_keys``); setting one that the chosen method does not read is an error.

    positives: time (frames apart in time, one augmentation draw: SimCLR-TT), augment (two
    augmentations of one frame: SimCLR), both (apart in time and augmented apart: TT+); null
    takes the method's own default. temperature: of InfoNCE-style losses. reduction
    l_out|pairwise|l_in, pairing group|aligned|first_last and decoupled: the multi-positive
    InfoNCE of ``cltt`` (decoupled also for ``simclr``).
    """

    name: str = "cltt"
    positives: Optional[Literal["time", "augment", "both"]] = None
    temperature: float = 0.1
    reduction: Literal["l_out", "pairwise", "l_in"] = "l_out"  # cltt: how the positives of an anchor enter the loss
    pairing: Literal["group", "aligned", "first_last"] = "group"  # cltt: which frames of the window(s) are positives
    decoupled: bool = False

    @staticmethod
    def entry_of(name: Any, at: str = "method") -> MethodSection:
        """What the recipe knows of method ``name`` (:mod:`cltt.recipe.methods`; a plugin is
        imported only for a name no built-in has), or a :class:`RecipeError` naming the closest."""
        try:
            return find_method_section(name)
        except CLTTError as err:
            raise RecipeError(f"recipe key '{at}.name': {err}") from None

    def validate(self, at: str) -> None:
        check_positive(self.temperature, f"{at}.temperature")
        chosen = self.entry_of(self.name, at)
        for f in dataclasses.fields(MethodConfig):
            if f.name == "name" or f.name in chosen.shared_keys:
                continue
            if getattr(self, f.name) != f.default:
                readers = [n for n, s in method_sections().items() if f.name in s.shared_keys]
                raise RecipeError(f"recipe key '{at}.{f.name}' is not read by method {self.name} (it is read by "
                                  f"{', '.join(readers) or 'no method'}); remove it")
        supported = chosen.supported_positives
        if self.positives is not None and self.positives not in supported:
            raise RecipeError(f"recipe key '{at}.positives={self.positives}' does not apply to method {self.name}; "
                              + (f"it takes {', '.join(supported)}" if supported else "remove it"))
        for other, section in method_sections().items():
            if other == self.name or section.config is None:
                continue
            if getattr(self, other) != section.config():
                raise RecipeError(f"recipe key '{at}.{other}' belongs to method {other}, but {at}.name is "
                                  f"{self.name}; remove the section or set {at}.name={other}")


_METHOD_CLASSES: dict[tuple, type] = {}
# sections that were renamed, so recipes saved in run dirs before the rename still load
LEGACY_METHOD_SECTIONS = {"slots": "slotcontrast"}


def method_config_class(keys: Iterable[str] = ()) -> type:
    """:class:`MethodConfig` with one section field per declared method that has one: the
    built-ins and the plugins imported so far, or every plugin when one of ``keys`` (of a
    recipe's method section) is neither a shared key nor a section known yet."""
    declared = method_sections()
    known = {f.name for f in dataclasses.fields(MethodConfig)} | set(declared)
    if any(key not in known for key in keys):
        declared = method_sections(with_plugins=True)
    sections = tuple((name, entry.config) for name, entry in declared.items() if entry.config is not None)
    if sections not in _METHOD_CLASSES:
        fields = [(name, config, field(default_factory=config)) for name, config in sections]
        _METHOD_CLASSES[sections] = dataclasses.make_dataclass("MethodConfig", fields, bases=(MethodConfig,))
    return _METHOD_CLASSES[sections]


def concrete_schema(cls: type) -> type:
    """The concrete dataclass for a schema node (the method and probe sections grow with their registries)."""
    if cls is ProbeConfig:
        return probe_config_class()
    return method_config_class() if cls is MethodConfig else cls
