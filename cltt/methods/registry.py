"""The method registry: the one list of what ``method.name`` may be.

A method is a :class:`~cltt.methods.base.Method` subclass decorated with
:func:`register_method`. What the recipe must know of it without importing it (and torch) is
declared once in :mod:`cltt.recipe.methods`: its section's dataclass, the shared keys it reads,
the ``method.positives`` it takes. The class takes those facts from there:

    # cltt/recipe/methods/byol.py
    declare_method("byol", BYOLConfig, shared_keys=PAIR_SHARED_KEYS, supported_positives=PAIR_POSITIVES)

    # cltt/methods/byol.py
    @register_method("byol")
    class BYOL(PairMethod):
        '''Online network predicts an EMA target network's projection of the other view.'''

Methods come from two places, found the first time anything asks:

* every module of the ``cltt.methods`` package (a new file there is a new method, with its
  declaration in ``cltt/recipe/methods/`` of the same file name);
* the entry-point group ``cltt.methods`` of installed distributions: a plugin package declares
  ``[project.entry-points."cltt.methods"] mymethod = "my_package.my_method"`` and its module
  registers itself when imported, with ``register_method(name, config=...)`` and the class's
  ``shared_keys`` and ``supported_positives`` (the entry point may also name the class,
  ``"my_package.my_method:MyMethod"``; it is then registered under the entry point's name).

The recipe's accepted names, each method's config section, ``cltt train --help`` and the
engine tests all read these; nothing keeps a second list.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cltt.errors import CLTTError
from cltt.recipe.methods import ENTRY_POINT_GROUP, declare_method, load_plugins, loading_origin, method_sections

__all__ = ["ENTRY_POINT_GROUP", "MethodEntry", "method_descriptions", "method_entry", "register_method",
           "registered_methods"]


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


def register_method(name: str, config: Any = None):
    """Class decorator: register a :class:`Method` as ``method.name=<name>``.

    A built-in method's section, shared keys and positives are its declaration in
    :mod:`cltt.recipe.methods` and are set on the class here. A plugin passes ``config``, a
    dataclass whose fields become the recipe section ``method.<name>.*`` (validated by its
    ``validate(at)`` method if it has one), and declares the class's ``shared_keys`` and
    ``supported_positives``. A second registration of the same name from another module is an
    error; re-importing the same module is not.
    """
    if not name.isidentifier():
        raise CLTTError(f"method name {name!r} must be a Python identifier (it names the recipe section method.{name})")

    def register(cls):
        previous = _METHODS.get(name)
        if previous is not None and previous.cls.__module__ != cls.__module__:
            raise CLTTError(f"method {name!r} is registered twice: by {previous.cls.__module__} and {cls.__module__}")
        section = method_sections().get(name)
        if cls.__module__.startswith("cltt."):
            if section is None or config is not None:
                raise CLTTError(f"method {name!r} ({cls.__module__}) declares its section, shared keys and positives "
                                f"in cltt/recipe/methods/ with declare_method({name!r}, ...), not here")
        elif section is None or config is not None:  # a class named by an entry point is declared by then
            section = declare_method(name, config, shared_keys=cls.shared_keys,
                                     supported_positives=cls.supported_positives)
        cls.name = name
        cls.config_class = section.config
        cls.shared_keys = section.shared_keys
        cls.supported_positives = section.supported_positives
        doc = (cls.__doc__ or "").strip().splitlines()
        _METHODS[name] = MethodEntry(name, cls, section.config, doc[0].strip() if doc else "", loading_origin())
        return cls

    return register


def registered_methods() -> dict[str, MethodEntry]:
    """Every method, built-in and from plugins, by name (sorted)."""
    _load_all()
    return dict(sorted(_METHODS.items()))


def method_descriptions() -> dict[str, str]:
    """Each method's one-line description by name (sorted), as :func:`registered_methods` gives
    it, for ``cltt train --help``. A built-in's is read from its module's source, the first line
    of the docstring of the class it decorates with ``@register_method(name)``, so asking
    imports no method and no torch. With a plugin installed (or the methods already imported),
    the registry itself is asked, which imports them all."""
    from importlib import metadata
    from importlib.util import find_spec

    if _loaded or metadata.entry_points(group=ENTRY_POINT_GROUP):
        return {name: entry.description for name, entry in registered_methods().items()}
    import cltt.methods as package

    found = {}
    for module in pkgutil.iter_modules(package.__path__):
        if module.name.startswith("_"):
            continue
        source = Path(find_spec(f"{package.__name__}.{module.name}").origin)
        for node in ast.parse(source.read_text(encoding="utf-8")).body:
            name = _registered_name(node)
            if name is not None:
                lines = (ast.get_docstring(node) or "").strip().splitlines()
                found[name] = lines[0].strip() if lines else ""
    return dict(sorted(found.items()))


def _registered_name(node: ast.stmt) -> str | None:
    """The name a class statement registers with ``@register_method("name")``, if it does."""
    if not isinstance(node, ast.ClassDef):
        return None
    for decorator in node.decorator_list:
        if (isinstance(decorator, ast.Call) and getattr(decorator.func, "id", getattr(decorator.func, "attr", None))
                == "register_method" and decorator.args and isinstance(decorator.args[0], ast.Constant)):
            return decorator.args[0].value
    return None


def method_entry(name: str) -> MethodEntry:
    """The registered method ``name``, or one line naming the closest ones."""
    methods = registered_methods()
    if name in method_sections() and name not in methods:  # half added: one method's gap stops only its runs
        raise CLTTError(f"method {name!r} is declared in cltt/recipe/methods/ but no module of cltt.methods "
                        f"registers it with @register_method({name!r})")
    if name not in methods:
        close = difflib.get_close_matches(str(name), list(methods), n=1, cutoff=0.5)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise CLTTError(f"method.name={name!r} is not a registered method; {hint}choose one of {', '.join(methods)}")
    return methods[name]


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    import cltt.methods as package

    for module in pkgutil.iter_modules(package.__path__):  # shared parts (base, pairs, ...) register nothing
        if not module.name.startswith("_"):
            importlib.import_module(f"cltt.methods.{module.name}")
    try:
        plugins = load_plugins()
    except CLTTError:
        _loaded = False  # asked again, the plugin is tried again (and fails the same way)
        raise
    for name, loaded in plugins:
        if isinstance(loaded, type) and name not in _METHODS:
            register_method(name)(loaded)
