"""Training methods: how a batch of samples becomes a loss. ``method.name`` picks one.

A method is one file: a :class:`~cltt.methods.base.Method` subclass decorated with
:func:`register_method`, with what the recipe must know of it (its section, the shared keys it
reads, its positives) declared without torch in ``cltt/recipe/methods/`` under the same file
name, so loading a recipe imports no method. Files in this package
and plugins of the ``cltt.methods`` entry-point group are found by
:mod:`cltt.methods.registry`, the one list of methods: the recipe, ``cltt train --help``, the
README's method table and the engine tests all read it.
"""

from __future__ import annotations

from cltt.methods.registry import method_entry, register_method, registered_methods

__all__ = ["build_method", "method_class", "method_entry", "register_method", "registered_methods"]


def method_class(name: str):
    """The :class:`~cltt.methods.base.Method` subclass registered as ``name``."""
    return method_entry(name).cls


def build_method(recipe):
    """The method ``recipe.method.name`` with its encoder, checked against the recipe, and
    ``model.freeze`` applied (what was frozen is in ``method.freeze_report``)."""
    from cltt.models.freezing import freeze

    cls = method_class(recipe.method.name)
    method = cls(recipe)
    spec = recipe.model.freeze if recipe.model.freeze is not None else cls.default_freeze
    method.freeze_report = freeze(method, spec)
    method.train(method.training)
    return method
