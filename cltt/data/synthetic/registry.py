"""The synthetic generators by name: the one list of what ``data.synthetic`` and
``cltt extract --synthetic`` may be.

A generator is a :class:`~cltt.data.synthetic.base.Generator` subclass in its own module of
this package, decorated:

    @register_generator("bouncing-balls", id=1)
    class BouncingBalls(Generator):
        '''Anti-aliased balls of distinct saturated colours on a gently textured background.'''

        fps = 10.0  # required: frame t of a clip is at t / fps seconds

Every module of the package is imported the first time anything asks
(:func:`registered_generators`, :func:`get_generator`), so a new file is a new dataset: the
recipe's accepted names, ``cltt extract --help`` and the tests all read this registry. ``id``
enters every random seed of the generator's clips, so two generators share neither a name nor
an id, and an id never changes (it would change every clip).
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from typing import TYPE_CHECKING

from cltt.errors import CLTTError

if TYPE_CHECKING:
    from cltt.data.synthetic.base import Generator

_GENERATORS: dict[str, Generator] = {}
_loaded = False


def register_generator(name: str, id: int):
    """Class decorator: register a :class:`Generator` subclass as ``data.synthetic=<name>``
    with seed id ``id`` (> 0: numpy's SeedSequence pads seeds with zeros, so 0 would repeat
    another generator's seeds). Re-importing the same module is not a second registration."""
    if id <= 0:
        raise CLTTError(f"synthetic generator {name!r}: id must be > 0, got {id}")

    def register(cls):
        for other in _GENERATORS.values():
            if type(other).__module__ != cls.__module__ and (other.name == name or other.id == id):
                raise CLTTError(f"synthetic generator {name!r} (id {id}, {cls.__module__}) clashes with "
                                f"{other.name!r} (id {other.id}, {type(other).__module__}); give it its own name and id")
        if not getattr(cls, "fps", 0) > 0:  # frame t is at t / fps seconds: no default that could be silently wrong
            raise CLTTError(f"synthetic generator {name!r} ({cls.__module__}) states no frame rate; give the class "
                            "fps = <frames per second> (its clips' timestamps.csv)")
        cls.name, cls.id = name, id
        _GENERATORS[name] = cls()
        return cls

    return register


def registered_generators() -> dict[str, Generator]:
    """Every generator of the package, by name (sorted)."""
    _load_all()
    return dict(sorted(_GENERATORS.items()))


def get_generator(name: str) -> Generator:
    """The generator called ``name``; a :class:`CLTTError` naming the valid ones otherwise."""
    generators = registered_generators()
    if name in generators:
        return generators[name]
    close = difflib.get_close_matches(str(name), list(generators), n=1, cutoff=0.4)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise CLTTError(f"no synthetic dataset '{name}'{hint} (choose one of {', '.join(generators)})")


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    import cltt.data.synthetic as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")
    _loaded = True
