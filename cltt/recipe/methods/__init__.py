"""What the recipe knows of each method, without importing it (or torch).

A built-in method's recipe-facing facts are declared in ``cltt/recipe/methods/<file>.py``, the
file named like its implementation in :mod:`cltt.methods`: the dataclass of its section
``method.<name>.*`` (when it has settings), the keys of the shared ``method`` section it reads,
and the ``method.positives`` values it takes (the first is its default)::

    @dataclass
    class VICRegConfig: ...

    declare_method("vicreg", VICRegConfig, shared_keys=PAIR_SHARED_KEYS, supported_positives=PAIR_POSITIVES)

The implementation registers under the same name (``@register_method("vicreg")``) and takes
these facts from here, so each is written once. Loading a recipe reads only these modules:
``cltt index``, ``cltt runs`` or ``cltt train --show`` import no torch.

A plugin (entry-point group ``cltt.methods``) stays one file: ``register_method(name,
config=...)`` declares its section when the plugin is imported, which happens the first time
a recipe names a method or section that no built-in declares, or something asks for every
method. A plugin that fails to import is one line naming it.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any

from cltt.errors import CLTTError

ENTRY_POINT_GROUP = "cltt.methods"
# what a method built on two views (cltt.methods.pairs) reads and takes
PAIR_SHARED_KEYS = ("positives",)
PAIR_POSITIVES = ("time", "augment", "both")


@dataclass(frozen=True)
class MethodSection:
    """One method as the recipe sees it: its section's dataclass (or None), the shared keys it
    reads, the ``method.positives`` it takes (the first is its default), and where it comes
    from ("cltt", or the plugin's distribution and entry point)."""

    name: str
    config: Any
    shared_keys: tuple[str, ...]
    supported_positives: tuple[str, ...]
    origin: str


_SECTIONS: dict[str, MethodSection] = {}
_builtins_loaded = False
_plugins_loaded = False
_plugin_objects: list[tuple[str, Any]] = []  # what each plugin's entry point named, once imported
_loading_origin = "cltt"


def declare_method(name: str, config: Any = None, *, shared_keys: tuple[str, ...] = (),
                   supported_positives: tuple[str, ...] = ()) -> MethodSection:
    """Declare method ``name``'s recipe facts (see the module docstring); declaring the same
    name again from another origin or with another section is an error."""
    if not name.isidentifier():
        raise CLTTError(f"method name {name!r} must be a Python identifier (it names the recipe section method.{name})")
    section = MethodSection(name, config, tuple(shared_keys), tuple(supported_positives), _loading_origin)
    previous = _SECTIONS.get(name)
    if previous is not None and (previous.origin, _qualname(previous.config)) != (section.origin, _qualname(config)):
        raise CLTTError(f"method {name!r} is declared twice: by {previous.origin} and {section.origin}")
    _SECTIONS[name] = section
    return section


def loading_origin() -> str:
    """Where the method being imported now comes from: "cltt", or the plugin being loaded."""
    return _loading_origin


def method_sections(with_plugins: bool = False) -> dict[str, MethodSection]:
    """The declared methods by name (sorted): the built-ins, the plugins imported so far, and
    with ``with_plugins`` every plugin (importing them)."""
    _load_builtins()
    if with_plugins:
        load_plugins()
    return dict(sorted(_SECTIONS.items()))


def find_method_section(name: Any) -> MethodSection:
    """The method ``name``; plugins are imported only when no built-in is called so. An
    unknown name is one line naming the closest ones."""
    sections = method_sections()
    known = isinstance(name, str)  # a list or mapping is no name (and unhashable)
    if not known or name not in sections:
        sections = method_sections(with_plugins=True)
    if not known or name not in sections:
        close = difflib.get_close_matches(str(name), list(sections), n=1, cutoff=0.5)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise CLTTError(f"method.name={name!r} is not a registered method; {hint}choose one of {', '.join(sections)}")
    return sections[name]


def load_plugins() -> list[tuple[str, Any]]:
    """Import every plugin of the entry-point group once; what each entry point names, by its
    name (a module registers itself; a class is declared here from its attributes)."""
    global _plugins_loaded, _loading_origin
    if _plugins_loaded:
        return list(_plugin_objects)
    from importlib import metadata  # 0.1 s of email parsing, paid only when a plugin may be needed

    _plugins_loaded = True
    _plugin_objects.clear()
    for point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = point.dist.name if point.dist is not None else "?"
        _loading_origin = f"{dist} ({point.value})"
        try:
            loaded = point.load()
            if isinstance(loaded, type) and point.name not in _SECTIONS:
                declare_method(point.name, getattr(loaded, "config_class", None),
                               shared_keys=getattr(loaded, "shared_keys", ()),
                               supported_positives=getattr(loaded, "supported_positives", ()))
            _plugin_objects.append((point.name, loaded))
        except Exception as err:  # noqa: BLE001  any failure while importing a plugin is the plugin's
            last = (str(err).strip().splitlines() or [""])[-1]
            _plugins_loaded = False  # asked again, the plugin is tried again (and fails the same way)
            raise CLTTError(f"method plugin {point.name!r} from {dist} ({point.value}) failed to import: "
                            f"{type(err).__name__}: {last}; fix or uninstall that package") from None
        finally:
            _loading_origin = "cltt"
    return list(_plugin_objects)


def _load_builtins() -> None:
    global _builtins_loaded
    if _builtins_loaded:
        return
    _builtins_loaded = True
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


def _qualname(config: Any) -> str | None:
    return None if config is None else f"{config.__module__}.{config.__qualname__}"
