"""Training methods: how a batch of windows becomes a loss. ``method.name`` picks one.

Adding a method is adding one module that subclasses :class:`~cltt.methods.base.Method` and
decorates it with :func:`register_method`; the tests enumerate :data:`METHODS`, so every method
gets a smoke train and a checkpoint round trip.
"""

from __future__ import annotations

from cltt.errors import CLTTError
from cltt.methods.base import Method

METHODS: dict[str, type[Method]] = {}


def register_method(name: str):
    def register(cls: type[Method]) -> type[Method]:
        cls.name = name
        METHODS[name] = cls
        return cls

    return register


def method_class(name: str) -> type[Method]:
    _load_builtin()
    if name not in METHODS:
        raise CLTTError(f"method.name={name!r} is not a method; choose one of {', '.join(sorted(METHODS))}")
    return METHODS[name]


def build_method(recipe) -> Method:
    """The method ``recipe.method.name`` with its encoder, checked against the recipe."""
    return method_class(recipe.method.name)(recipe)


def _load_builtin() -> None:
    from cltt.methods import carl, clip_simclr, simclr, slotcontrast, temporal  # noqa: F401  (they register themselves)
