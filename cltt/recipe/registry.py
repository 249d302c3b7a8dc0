"""A registry filled by the modules of one package, for probe tasks and readouts.

Each kind keeps two: what the recipe knows (``cltt/recipe/probes/``: the section dataclass
``probe.<name>.*`` and the facts the recipe checks, torch-free, in the recipe's own layer) and
the implementation (``cltt/eval/tasks/``, ``cltt/eval/readouts/``), registered under the same
name. A plug-in is a class in its own module of the package, decorated with ``register``:

    @register_task("phases")                          # cltt/eval/tasks/phases.py
    class Phases(ProbeTask):
        '''CARL's per-frame phases ...'''             # first line: the --help description

The package is walked the first time anything asks (:meth:`Registry.entries`), so a new file
there is a new entry, seen by the recipe's choices, ``--help`` and the registry-enumerated
tests with no list to edit. Walking imports the modules, so they keep torch and scikit-learn
inside functions.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any

from cltt.errors import CLTTError


@dataclass(frozen=True)
class Entry:
    """One registered plug-in: its class, its recipe section's dataclass (``probe.<name>.*``,
    or None) and its one-line description (the first line of the class docstring)."""

    name: str
    cls: Any
    config: Any
    description: str


class Registry:
    """The plug-ins of one kind (``kind``: "probe task"), found in the package ``package``;
    ``key`` is the recipe key that names one (``probe.task``), for error messages."""

    def __init__(self, kind: str, package: str, key: str):
        self.kind, self.package, self.key = kind, package, key
        self._entries: dict[str, Entry] = {}
        self._loaded = False

    def register(self, name: str, config: Any = None):
        """Class decorator: register the class as ``name``; ``config`` is the dataclass of its
        recipe section ``probe.<name>.*`` (validated by its ``validate(at)`` if it has one). A
        second registration of the name from another module is an error; re-importing the same
        module is not."""
        if not name.isidentifier():
            raise CLTTError(f"{self.kind} name {name!r} must be a Python identifier (it names the recipe "
                            f"section probe.{name})")

        def register(cls):
            previous = self._entries.get(name)
            if previous is not None and previous.cls.__module__ != cls.__module__:
                raise CLTTError(f"{self.kind} {name!r} is registered twice: by {previous.cls.__module__} "
                                f"and {cls.__module__}")
            cls.name = name
            cls.config_class = config
            doc = (cls.__doc__ or "").strip().splitlines()
            self._entries[name] = Entry(name, cls, config, doc[0].strip() if doc else "")
            return cls

        return register

    def entries(self) -> dict[str, Entry]:
        """Every registered plug-in by name, in name order."""
        self._load_all()
        return dict(sorted(self._entries.items()))

    def entry(self, name: Any) -> Entry:
        """The plug-in ``name``, or one line naming the closest and every choice."""
        entries = self.entries()
        if not isinstance(name, str) or name not in entries:  # a list or mapping is no name (and unhashable)
            close = difflib.get_close_matches(str(name), list(entries), n=1, cutoff=0.5)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise CLTTError(f"{self.key}={name!r} is not a registered {self.kind}; {hint}choose one of "
                            f"{', '.join(entries)}")
        return entries[name]

    def _load_all(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        package = importlib.import_module(self.package)
        for module in pkgutil.iter_modules(package.__path__):  # a module whose name starts with _ is shared code
            if not module.name.startswith("_"):
                importlib.import_module(f"{self.package}.{module.name}")
