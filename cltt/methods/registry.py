"""The method registry: the one list of what ``method.name`` may be.

A method is a :class:`~cltt.methods.base.Method` subclass decorated with
:func:`register_method`. Its file declares everything else the rest of cltt needs:

    @register_method("byol", config=BYOLConfig)      # method.byol.* is BYOLConfig
    class BYOL(PairMethod):
        '''Online network predicts an EMA target network's projection of the other view.'''

Methods come from two places, found the first time anything asks:

* every module of the ``cltt.methods`` package (a new file there is a new method);
* the entry-point group ``cltt.methods`` of installed distributions: a plugin package declares
  ``[project.entry-points."cltt.methods"] mymethod = "my_package.my_method"`` and its module
  registers itself when imported (the entry point may also name the class,
  ``"my_package.my_method:MyMethod"``; it is then registered under the entry point's name).

The recipe's accepted names, each method's config section, ``cltt train --help`` and the
engine tests all read :func:`registered_methods`; nothing keeps a second list.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from cltt.errors import CLTTError

ENTRY_POINT_GROUP = "cltt.methods"


@dataclass(frozen=True)
class MethodEntry:
    """One registered method: its class, its config section's dataclass (or None) and its
    one-line description (the first line of the class docstring)."""

    name: str
    cls: Any
    config: Any
    description: str
    origin: str  # "cltt" or the plugin's distribution/entry point


_METHODS: dict[str, MethodEntry] = {}
_loaded = False
_loading_origin = "cltt"


def register_method(name: str, config: Any = None):
    """Class decorator: register a :class:`Method` as ``method.name=<name>``.

    ``config`` is a dataclass whose fields become the recipe section ``method.<name>.*``
    (validated by its ``validate(at)`` method if it has one). A second registration of the
    same name from another module is an error; re-importing the same module is not.
    """
    if not name.isidentifier():
        raise CLTTError(f"method name {name!r} must be a Python identifier (it names the recipe section method.{name})")

    def register(cls):
        previous = _METHODS.get(name)
        if previous is not None and previous.cls.__module__ != cls.__module__:
            raise CLTTError(f"method {name!r} is registered twice: by {previous.cls.__module__} and {cls.__module__}")
        cls.name = name
        cls.config_class = config
        doc = (cls.__doc__ or "").strip().splitlines()
        _METHODS[name] = MethodEntry(name, cls, config, doc[0].strip() if doc else "", _loading_origin)
        return cls

    return register


def registered_methods() -> dict[str, MethodEntry]:
    """Every method, built-in and from plugins, by name (sorted)."""
    _load_all()
    return dict(sorted(_METHODS.items()))


def method_entry(name: str) -> MethodEntry:
    """The registered method ``name``, or one line naming the closest ones."""
    methods = registered_methods()
    if name not in methods:
        close = difflib.get_close_matches(str(name), list(methods), n=1, cutoff=0.5)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise CLTTError(f"method.name={name!r} is not a registered method; {hint}choose one of {', '.join(methods)}")
    return methods[name]


def _load_all() -> None:
    global _loaded, _loading_origin
    if _loaded:
        return
    _loaded = True
    import cltt.methods as package

    for module in pkgutil.iter_modules(package.__path__):  # shared parts (base, pairs, ...) register nothing
        if not module.name.startswith("_"):
            importlib.import_module(f"cltt.methods.{module.name}")
    for point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = point.dist.name if point.dist is not None else "?"
        _loading_origin = f"{dist} ({point.value})"
        try:
            loaded = point.load()
            if isinstance(loaded, type) and point.name not in _METHODS:
                register_method(point.name, getattr(loaded, "config_class", None))(loaded)
        except Exception as err:  # noqa: BLE001  any failure while importing a plugin is the plugin's
            last = (str(err).strip().splitlines() or [""])[-1]
            _loaded = False  # asked again, the plugin is tried again (and fails the same way)
            raise CLTTError(f"method plugin {point.name!r} from {dist} ({point.value}) failed to import: "
                            f"{type(err).__name__}: {last}; fix or uninstall that package") from None
        finally:
            _loading_origin = "cltt"
